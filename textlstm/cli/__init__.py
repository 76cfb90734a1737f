"""The `textlstm` command: a thin typer layer over the library (`commands` for the everyday
commands, `tools` for tuning and deployment, `_common` for what they share). Run as `textlstm`,
`python -m textlstm.cli` or `torchrun … -m textlstm.cli`."""
from .commands import app, main

__all__ = ["app", "main"]
