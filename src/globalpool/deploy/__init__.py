"""Using a trained model: load a run, predict, export to ONNX / TorchScript.

``load`` / ``predict`` need only torch, numpy and PIL; exporting to ONNX needs the
``export`` extra (onnx, onnxruntime).
"""

from globalpool.deploy.export import (
    ExportResult,
    export_model,
    export_onnx,
    export_torchscript,
    read_export_metadata,
)
from globalpool.deploy.images import find_images, to_image_tensors
from globalpool.deploy.loading import TrainedModel, load
from globalpool.deploy.masked import MaskedClassifier, downsample_mask
from globalpool.deploy.prediction import predict, predict_proba

__all__ = [
    "ExportResult",
    "MaskedClassifier",
    "TrainedModel",
    "downsample_mask",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "find_images",
    "load",
    "predict",
    "predict_proba",
    "read_export_metadata",
    "to_image_tensors",
]
