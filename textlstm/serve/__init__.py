"""`textlstm serve`: a model over HTTP (FastAPI + uvicorn), with micro-batching between
concurrent requests and the model, limits, JSON errors, Prometheus metrics and a try-it page.

>>> from textlstm.serve import ServeSettings, create_app, serve      # doctest: +SKIP
>>> serve(ServeSettings(model="model", port=8000))                   # doctest: +SKIP
"""
from .app import PredictRequest, create_app, create_app_from_env
from .batching import MicroBatcher, QueueFull, ShuttingDown
from .metrics import ServeMetrics
from .predictor import OnnxPredictor, Prediction, Predictor, TorchPredictor, load_predictor
from .server import serve
from .settings import ServeSettings

__all__ = ["create_app", "create_app_from_env", "serve", "ServeSettings", "Predictor", "TorchPredictor",
           "OnnxPredictor", "Prediction", "load_predictor", "MicroBatcher", "QueueFull", "ShuttingDown",
           "ServeMetrics", "PredictRequest"]
