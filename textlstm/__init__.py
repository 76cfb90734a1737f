"""textlstm: text classification with pretrained word embeddings and bidirectional LSTMs.

>>> from textlstm import TextClassifier               # doctest: +SKIP
>>> clf = TextClassifier().fit(texts, labels)          # doctest: +SKIP
>>> clf.predict(["what a lovely film"])                # doctest: +SKIP
"""
import os

# oneDNN (PyTorch's CPU kernels) caches up to 1,024 primitives, one per LSTM batch shape, each
# with its own scratch memory: in bfloat16 that made training peak 59 % above float32. textlstm
# keeps 8 unless you set the variable yourself; it must be set before the first oneDNN call,
# which is why it is set here, on import (see docs/training.md, "Memory").
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

from . import _compat  # noqa: E402

_compat.install()  # the import paths of 0.1's flat layout keep working

from .classifier import TextClassifier  # noqa: E402
from .config import Config, make_config  # noqa: E402
from .data.vocab import Vocab  # noqa: E402
from .errors import TextLSTMError  # noqa: E402

__all__ = ["TextClassifier", "TextLSTMClassifier", "Config", "make_config", "TextLSTMError", "Vocab"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """`TextLSTMClassifier` is imported on first use: it needs scikit-learn, whose import takes
    a second or more that predicting with a `TextClassifier` does not need."""
    if name == "TextLSTMClassifier":
        from .sklearn import TextLSTMClassifier
        return TextLSTMClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
