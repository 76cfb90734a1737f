"""textlstm: text classification with pretrained word embeddings and bidirectional LSTMs.

>>> from textlstm import TextClassifier               # doctest: +SKIP
>>> clf = TextClassifier().fit(texts, labels)          # doctest: +SKIP
>>> clf.predict(["what a lovely film"])                # doctest: +SKIP
"""
from . import _compat

_compat.install()  # the import paths of 0.1's flat layout keep working

from .classifier import TextClassifier  # noqa: E402
from .config import Config, make_config  # noqa: E402
from .data.vocab import Vocab  # noqa: E402
from .errors import TextLSTMError  # noqa: E402
from .sklearn import TextLSTMClassifier  # noqa: E402

__all__ = ["TextClassifier", "TextLSTMClassifier", "Config", "make_config", "TextLSTMError", "Vocab"]
__version__ = "0.1.0"
