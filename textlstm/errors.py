"""Typed errors. The CLI turns any `TextLSTMError` into one line on stderr and exit code 1.

`NotFittedError` is also scikit-learn's; it is made on first use (`errors.NotFittedError`), as
importing scikit-learn takes a second or more, which a `textlstm predict` should not pay."""
from __future__ import annotations

import functools


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


class DiskFullError(TextLSTMError, OSError):
    """A write ran out of disk space (or quota); what the path held before is intact."""


class TrainingError(TextLSTMError):
    """Training cannot go on (non-finite loss, mismatched resume, ...)."""


@functools.cache
def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(TextLSTMError, SklearnNotFittedError):
        """A method that needs a trained model was called before `fit`/`load`; it is also
        scikit-learn's `NotFittedError` (a `ValueError` and an `AttributeError`)."""

    NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"  # found by name
    return NotFittedError


def __getattr__(name: str) -> type:
    """`NotFittedError`, made once, on first use."""
    if name == "NotFittedError":
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def not_fitted(message: str) -> TextLSTMError:
    """A `NotFittedError` with `message`, to raise."""
    return _not_fitted_error()(message)


def where(path: object, line: int | None = None) -> str:
    """`file:line` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)
