"""Pretrained word vectors: reading GloVe / word2vec / fastText files (`vectors`, with the fast
text path in `textformat`), the embedding matrix of a training run's vocabulary (`matrix`) and
word2vec vectors trained on the user's own text (`word2vec`).

>>> from textlstm.embeddings import load_vectors   # doctest: +SKIP
"""
from .matrix import vocab_and_vectors
from .vectors import (
                      TEXT_FORMATS,
                      VECTOR_FORMATS,
                      Coverage,
                      Vectors,
                      detect_vectors_format,
                      load_vectors,
                      read_vector_words,
)

__all__ = ["TEXT_FORMATS", "VECTOR_FORMATS", "Coverage", "Vectors", "detect_vectors_format", "load_vectors",
           "read_vector_words", "vocab_and_vectors"]
