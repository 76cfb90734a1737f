"""Dynamic int8 quantisation of the LSTM/GRU and linear layers, for inference on CPU.

PyTorch's dynamic quantisation (`torch.ao.quantization.quantize_dynamic`) stores those layers'
weights as int8 with one scale per tensor and quantises activations on the fly; the embedding
and everything else stay float. A model directory never holds the quantised tensors: it keeps
the float weights and records `model.quantization = "dynamic-int8"` in config.json, and
`TextClassifier.load` quantises again. Re-quantising the same float weights gives the same
int8 weights, so a loaded model predicts exactly what the saved one did.

>>> import torch
>>> from textlstm.config import ModelConfig
>>> from textlstm.model import TextLSTM
>>> m = quantize_model(TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4), 10, 2), "dynamic-int8")
>>> is_quantized(m), sorted(float_state_dict(m))[:1]
(True, ['attention.proj.bias'])
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ConfigError

QUANTIZATIONS = ("none", "dynamic-int8")
QUANTIZED_LAYERS = {nn.LSTM, nn.GRU, nn.Linear}
_FLOAT_STATE = "_textlstm_float_state"


def check_quantization(mode: str) -> None:
    if mode not in QUANTIZATIONS:
        raise ConfigError(f"Quantisation {mode!r} is not supported. Allowed: {', '.join(QUANTIZATIONS)}.")


def _quantize_dynamic(model: nn.Module) -> nn.Module:
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as exc:  # torch.ao.quantization is deprecated and may go away
        raise ConfigError(f"This PyTorch ({torch.__version__}) has no dynamic quantisation "
                          f"(torch.ao.quantization: {exc}); load the model with "
                          "model.quantization = \"none\" or install torch 2.13.") from exc
    if "fbgemm" not in torch.backends.quantized.supported_engines and \
            "x86" not in torch.backends.quantized.supported_engines:
        raise ConfigError("Dynamic int8 quantisation needs PyTorch's fbgemm/x86 engine, which this "
                          f"CPU build lacks (engines: {torch.backends.quantized.supported_engines}).")
    with warnings.catch_warnings():
        # torch.ao.quantization announces its deprecation (in favour of torchao) on every call
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.ao\.quantization")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*quantize_per_tensor.*deprecated")
        return quantize_dynamic(model, QUANTIZED_LAYERS, dtype=torch.qint8, inplace=True)


def quantize_model(model: nn.Module, mode: str) -> nn.Module:
    """The model ready for inference with `mode` applied (in place; "none" returns it as is).

    The float weights are kept on the quantised model (`float_state_dict`) so that it can be
    saved, and quantised again when loaded."""
    check_quantization(mode)
    if mode == "none" or is_quantized(model):
        return model
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("Dynamic int8 quantisation runs on CPU only; set train.device = \"cpu\".")
    state = dict(model.state_dict())  # the same tensors: the unquantised embedding is not copied
    quantized = _quantize_dynamic(model.eval())
    setattr(quantized, _FLOAT_STATE, state)
    return quantized


def is_quantized(model: nn.Module) -> bool:
    return hasattr(model, _FLOAT_STATE)


def float_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The float weights: those a quantised model was made from, else its own state_dict."""
    return getattr(model, _FLOAT_STATE, None) or model.state_dict()
