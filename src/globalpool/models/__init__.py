"""Backbones, the ``Classifier`` wrapper, the model registry, counting and replace_head.

Imports ``globalpool.pool`` and ``globalpool.heads`` only.
"""

from globalpool.models import alexnet, allcnn, fastnet, lenet5, nin, smallgap, vgg_small  # noqa: F401
from globalpool.models.classifier import Classifier
from globalpool.models.counting import count_flops, count_params
from globalpool.models.registry import create_model, list_models, model_entry, register_model
from globalpool.models.replace import replace_head

__all__ = [
    "Classifier",
    "count_flops",
    "count_params",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
    "replace_head",
]
