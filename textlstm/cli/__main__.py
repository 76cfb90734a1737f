"""`python -m textlstm.cli …` and `torchrun … -m textlstm.cli …`."""
from .commands import main

main()
