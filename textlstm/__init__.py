"""textlstm: text classification with pretrained word embeddings and bidirectional LSTMs.

>>> from textlstm import TextClassifier               # doctest: +SKIP
>>> clf = TextClassifier().fit(texts, labels)          # doctest: +SKIP
>>> clf.predict(["what a lovely film"])                # doctest: +SKIP
"""
from .classifier import TextClassifier
from .config import Config, make_config
from .errors import TextLSTMError
from .sklearn import TextLSTMClassifier
from .vocab import Vocab

__all__ = ["TextClassifier", "TextLSTMClassifier", "Config", "make_config", "TextLSTMError", "Vocab"]
__version__ = "0.1.0"
