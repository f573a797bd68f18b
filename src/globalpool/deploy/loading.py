"""``globalpool.load``: a trained run, ready to predict."""

from __future__ import annotations

import functools
import os

from torch import nn

from globalpool.deploy.prediction import predict, predict_proba

__all__ = ["load"]


def load(path: str | os.PathLike, *, which: str = "best", device: str = "cpu") -> nn.Module:
    """Load a trained model from a run directory or one of its ``.safetensors`` checkpoints.

    Only safetensors weights and JSON are read: nothing is unpickled. A pickle file
    (``.pt``/``.pth``, or pickle bytes under any name), a truncated file, the weights of
    another model or of another class count raise a ValueError saying which.

    Args:
        path: run directory (``checkpoints/<which>.safetensors`` + ``model.json``) or a
            checkpoint file inside a run.
        which: ``"best"`` or ``"last"`` when ``path`` is a directory.
        device: where to put the model.

    Returns:
        The Classifier in eval mode, with attributes ``classes`` (list[str]),
        ``input_size`` ((H, W) it was trained at), ``mean``, ``std`` (per channel, [0, 1]
        units), ``run_meta`` (the run's model.json plus run_dir/checkpoint) and methods
        ``predict(images, topk=5, size=None, batch_size=64)`` and
        ``predict_proba(images, ...)`` (see :mod:`globalpool.deploy.prediction`).

    Example:
        >>> import globalpool  # doctest: +SKIP
        >>> model = globalpool.load("runs/cifar-gap")  # doctest: +SKIP
        >>> model.predict(["cat.png"], topk=3)  # doctest: +SKIP
        [[{'class': 'cat', 'index': 3, 'prob': 0.83}, ...]]
    """
    from globalpool.models.io import load_run

    model, meta = load_run(path, which=which)
    classes = meta.get("classes")
    model.classes = (
        list(classes) if classes is not None else [str(k) for k in range(model.num_classes)]
    )
    size = meta.get("input_size") or getattr(model, "input_size", None)
    if size is not None:
        model.input_size = tuple(int(v) for v in size)
    model.mean = [float(v) for v in meta["mean"]] if meta.get("mean") is not None else None
    model.std = [float(v) for v in meta["std"]] if meta.get("std") is not None else None
    model.run_meta = meta
    model.predict = functools.partial(predict, model)
    model.predict_proba = functools.partial(predict_proba, model)
    return model.to(device).eval()
