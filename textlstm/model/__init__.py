"""The trained network and everything that turns it into predictions or files: the `nn.Module`s
(`network`, `cells`, `directions`), running it over encoded texts (`infer`), the model directory
(`artifact`) and smaller models (`quantize`, `prune`).

>>> from textlstm.model import TextLSTM   # doctest: +SKIP
"""
from .artifact import FORMAT_VERSION, Artifact, load_artifact, save_artifact
from .infer import predict_logits, softmax
from .network import CELLS, AdditiveAttention, Encoder, TextLSTM, expected_shapes, reverse_within_length

__all__ = ["CELLS", "FORMAT_VERSION", "AdditiveAttention", "Artifact", "Encoder", "TextLSTM",
           "expected_shapes", "load_artifact", "predict_logits", "reverse_within_length", "save_artifact",
           "softmax"]
