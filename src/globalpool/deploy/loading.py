"""``globalpool.load``: a trained run, ready to predict."""

from __future__ import annotations

import os
from typing import Any

import torch

from globalpool.deploy.prediction import predict, predict_proba
from globalpool.models.classifier import Classifier

__all__ = ["TrainedModel", "load"]


class TrainedModel(Classifier):
    """A :class:`~globalpool.models.Classifier` loaded from a run by :func:`load`: the
    network with its weights, its ``classes``, ``mean``, ``std`` and ``input_size`` from
    the run's ``model.json``, ``run_meta`` (that file plus ``run_dir``, ``checkpoint``,
    ``epoch``), and prediction from raw images as methods.

    It is a Classifier in every other way (``forward_features``, ``head``,
    ``reset_classifier``...), so everything that takes a Classifier takes it.
    """

    run_meta: dict[str, Any]

    @classmethod
    def adopt(cls, model: Classifier, run_meta: dict[str, Any]) -> TrainedModel:
        """``model`` itself, now a TrainedModel: the subclass adds methods and
        ``run_meta`` only, so the modules, weights and state stay as they are (no copy)."""
        if type(model) is not Classifier:
            raise TypeError(f"expected a Classifier, got {type(model).__name__}")
        model.__class__ = cls
        model.run_meta = run_meta
        return model

    def predict(
        self, images, *, topk: int = 5, size=None, batch_size: int = 64
    ) -> list[list[dict]]:
        """Top-k classes with probabilities per image: :func:`globalpool.deploy.predict`
        with this model's classes and normalisation."""
        return predict(self, images, topk=topk, size=size, batch_size=batch_size)

    def predict_proba(self, images, *, size=None, batch_size: int = 64) -> torch.Tensor:
        """Softmax probabilities, (N_images, num_classes):
        :func:`globalpool.deploy.predict_proba`."""
        return predict_proba(self, images, size=size, batch_size=batch_size)


def load(path: str | os.PathLike, *, which: str = "best", device: str = "cpu") -> TrainedModel:
    """Load a trained model from a run directory or one of its ``.safetensors`` checkpoints.

    Only safetensors weights and JSON are read: nothing is unpickled. A pickle file
    (``.pt``/``.pth``, or pickle bytes under any name), a truncated file, the weights of
    another model or of another class count raise a ValueError saying which.

    Args:
        path: run directory (``checkpoints/<which>.safetensors`` + ``model.json``), a
            checkpoint file inside a run, or a shipped pretrained model's name.
        which: ``"best"`` or ``"last"`` when ``path`` is a directory.
        device: where to put the model.

    Returns:
        The :class:`TrainedModel` in eval mode: ``classes``, ``input_size``, ``mean``,
        ``std``, ``run_meta``, ``predict(images, topk=5, size=None, batch_size=64)`` and
        ``predict_proba(images, ...)`` (see :mod:`globalpool.deploy.prediction`).

    Example:
        >>> import globalpool  # doctest: +SKIP
        >>> model = globalpool.load("runs/cifar-gap")  # doctest: +SKIP
        >>> model.predict(["cat.png"], topk=3)  # doctest: +SKIP
        [[{'class': 'cat', 'index': 3, 'prob': 0.83}, ...]]
    """
    from globalpool.models.io import load_run

    model, meta = load_run(path, which=which)
    return TrainedModel.adopt(model, meta).to(device).eval()
