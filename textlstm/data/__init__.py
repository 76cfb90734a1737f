"""Text in, ids out: readers for every data format (`readers`, `formats`, `lines`, `records`),
the bundled corpus and public-corpus recipes (`corpora`), the tokenizer (`tokenize`), the
on-disk token cache (`tokencache`), the vocabulary (`vocab`) and length-bucketed batches
(`batching`).

>>> from textlstm.data import read_examples   # doctest: +SKIP
"""
from .batching import EncodedDataset, bucket_batches, iterate, sorted_batches
from .readers import (
                      BAD_LINE_MODES,
                      FORMATS,
                      detect_format,
                      label_order,
                      read_data,
                      read_dataset,
                      read_examples,
                      read_texts,
)
from .records import Example, ReadReport
from .tokencache import Corpus, load_corpus
from .tokenize import Tokenizer
from .vocab import PAD_ID, UNK_ID, Vocab

__all__ = ["BAD_LINE_MODES", "FORMATS", "Corpus", "EncodedDataset", "Example", "PAD_ID", "ReadReport",
           "Tokenizer", "UNK_ID", "Vocab", "bucket_batches", "detect_format", "iterate", "label_order",
           "load_corpus", "read_data", "read_dataset", "read_examples", "read_texts", "sorted_batches"]
