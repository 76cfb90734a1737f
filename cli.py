"""`python cli.py ...` behaves exactly like the installed `textlstm` command."""
from textlstm.cli import main

if __name__ == "__main__":
    main()
