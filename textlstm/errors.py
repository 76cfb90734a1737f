"""Typed errors. The CLI turns any `TextLSTMError` into one line on stderr and exit code 1."""
from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class TextLSTMError(Exception):
    """Base class for every error textlstm raises on bad input or bad state."""


class DataError(TextLSTMError):
    """A data file is missing, unreadable or malformed (the message names file and line)."""


class VectorsError(TextLSTMError):
    """A vectors file is missing, malformed or does not fit the model."""


class ConfigError(TextLSTMError):
    """An unknown configuration key or an invalid value."""


class ModelFileError(TextLSTMError):
    """A model directory or checkpoint is missing, corrupt, unsafe or incompatible."""


class TextInputError(DataError, ValueError):
    """Texts passed to the library are not a 1-D sequence of strings, or do not fit the labels."""


class NotFittedError(TextLSTMError, _SklearnNotFittedError):
    """A method that needs a trained model was called before `fit`/`load`; it is also
    scikit-learn's `NotFittedError` (a `ValueError` and an `AttributeError`)."""


class DiskFullError(TextLSTMError, OSError):
    """A write ran out of disk space (or quota); what the path held before is intact."""


class TrainingError(TextLSTMError):
    """Training cannot go on (non-finite loss, mismatched resume, ...)."""


def where(path: object, line: int | None = None) -> str:
    """`file:line` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)
