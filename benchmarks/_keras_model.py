"""A Keras 3 (torch backend) twin of a sequential globalpool model, for bench_train.py.

Benchmark code, not package code. :func:`keras_twin` walks the PyTorch model (its
backbone through nested ``nn.Sequential`` containers only, so the order of the modules
is the order of the computation; then a pool-linear or classmap head) and writes the
same layers with Keras: ``Conv2D`` (same kernel, stride, padding, bias), ``MaxPooling2D``,
``BatchNormalization`` (torch's momentum 0.1 = Keras' 0.9, same epsilon), exact GELU,
``GlobalAveragePooling2D``/``GlobalMaxPooling2D``, ``Dense``. Anything else (a residual
block, another pool) raises ``ValueError`` naming the module, rather than timing a
different network. Only the architecture is copied, not the weights: throughput does not
depend on the values.

Keras must be imported with ``KERAS_BACKEND=torch``; :func:`import_keras` does that and
returns None when Keras is not installed (``pip install 'globalpool[keras]'``).

Example:
    >>> keras = import_keras()
    >>> from globalpool.models import create_model
    >>> twin = keras_twin(keras, create_model("fastnet", 10), (3, 32, 32), "channels_last")
    >>> param_counts(twin)
    {'total': 295106, 'trainable': 295106}
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

from torch import nn


def import_keras():
    """The ``keras`` module on the torch backend, or None when it is not installed.

    Raises:
        RuntimeError: Keras was already imported with another backend.
    """
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        raise RuntimeError(
            f"keras was imported with the {keras.backend.backend()!r} backend before "
            "bench_train could set KERAS_BACKEND=torch"
        )
    return keras


def _sequential_leaves(module: nn.Module, path: str) -> Iterator[tuple[str, nn.Module]]:
    """The leaf modules of nested ``nn.Sequential`` containers, in execution order."""
    children = list(module.named_children())
    if not children:
        yield path, module
        return
    if not isinstance(module, nn.Sequential):
        raise ValueError(
            f"keras twin: {path} ({type(module).__name__}) is not an nn.Sequential, so its "
            "forward order is unknown; only sequential backbones are translated"
        )
    for name, child in children:
        yield from _sequential_leaves(child, f"{path}.{name}")


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv(keras, conv: nn.Conv2d, path: str, fmt: str):
    kernel = _pair(conv.kernel_size)
    padding = _pair(conv.padding) if not isinstance(conv.padding, str) else conv.padding
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1):
        raise ValueError(f"keras twin: {path}: grouped or dilated conv is not translated")
    if padding in ("valid", (0, 0)):
        keras_padding = "valid"
    elif padding == "same" or (
        _pair(conv.stride) == (1, 1)
        and all(k % 2 == 1 and p == k // 2 for k, p in zip(kernel, padding, strict=True))
    ):
        keras_padding = "same"
    else:
        raise ValueError(f"keras twin: {path}: padding {conv.padding} has no Keras equivalent")
    return keras.layers.Conv2D(
        conv.out_channels, kernel, strides=_pair(conv.stride), padding=keras_padding,
        use_bias=conv.bias is not None, data_format=fmt,
    )  # fmt: skip


def _layer(keras, module: nn.Module, path: str, fmt: str):
    """The Keras layer computing what ``module`` computes (None for an identity)."""
    if isinstance(module, nn.Conv2d):
        return _conv(keras, module, path, fmt)
    if isinstance(module, nn.MaxPool2d):
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        if _pair(module.padding) != (0, 0) or module.ceil_mode or _pair(module.dilation) != (1, 1):
            raise ValueError(f"keras twin: {path}: only unpadded max pools are translated")
        return keras.layers.MaxPooling2D(kernel, strides=stride, data_format=fmt)
    if isinstance(module, nn.BatchNorm2d):
        return keras.layers.BatchNormalization(
            axis=1 if fmt == "channels_first" else -1, momentum=1.0 - module.momentum,
            epsilon=module.eps, center=module.affine, scale=module.affine,
        )  # fmt: skip
    if isinstance(module, nn.GELU):
        approximate = module.approximate == "tanh"
        return keras.layers.Activation(lambda x: keras.activations.gelu(x, approximate=approximate))
    if isinstance(module, nn.ReLU):
        return keras.layers.ReLU()
    if isinstance(module, nn.Dropout):
        return keras.layers.Dropout(module.p)
    if isinstance(module, nn.Identity):
        return None
    if isinstance(module, nn.Linear):
        return keras.layers.Dense(module.out_features, use_bias=module.bias is not None)
    if isinstance(module, nn.Flatten):
        return keras.layers.Flatten(data_format=fmt)
    raise ValueError(f"keras twin: {path} ({type(module).__name__}) has no Keras translation")


def _global_pool(keras, pool_name: str | None, path: str, fmt: str):
    if pool_name == "avg":
        return keras.layers.GlobalAveragePooling2D(data_format=fmt)
    if pool_name == "max":
        return keras.layers.GlobalMaxPooling2D(data_format=fmt)
    raise ValueError(f"keras twin: {path}: pool {pool_name!r} has no Keras layer (avg, max only)")


def _head_pairs(keras, head: nn.Module, fmt: str) -> list:
    """(torch module, Keras layer) pairs of a pool-linear (pool, dropout, Linear) or
    classmap (conv, pool) head."""
    kind = type(head).__name__
    if kind == "PoolLinearHead":
        return [
            (head.pool, _global_pool(keras, head.pool_name, "head.pool", fmt)),
            (head.drop, _layer(keras, head.drop, "head.drop", fmt)),
            (head.fc, _layer(keras, head.fc, "head.fc", fmt)),
        ]
    if kind == "ClassMapHead":
        return [
            (head.conv, _conv(keras, head.conv, "head.conv", fmt)),
            (head.pool, _global_pool(keras, head.pool_name, "head.pool", fmt)),
        ]
    raise ValueError(f"keras twin: head {kind} is not translated (pool-linear, classmap only)")


def keras_twin(keras, model: nn.Module, input_shape: tuple[int, int, int], data_format: str):
    """A Keras ``Sequential`` with the layers of ``model`` (a globalpool ``Classifier``).

    Args:
        keras: the module from :func:`import_keras`.
        model: a ``Classifier`` with a sequential backbone and a pool-linear or classmap head.
        input_shape: (C, H, W) of one image, as the PyTorch model takes it.
        data_format: ``channels_first`` (Keras input (N, C, H, W)) or ``channels_last``
            ((N, H, W, C)); passed to every layer (not read from ``keras.config``).

    Input shape: (N, C, H, W) or (N, H, W, C) float32. Output shape: (N, num_classes) logits.

    Raises:
        ValueError: a module or head that has no translation here.
    """
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(
            f"data_format must be channels_first or channels_last; got {data_format!r}"
        )
    fmt = data_format
    modules = list(_sequential_leaves(model.backbone, "backbone"))
    pairs = [(m, _layer(keras, m, p, fmt)) for p, m in modules]
    pairs += _head_pairs(keras, model.head, fmt)
    c, h, w = input_shape
    shape = (c, h, w) if fmt == "channels_first" else (h, w, c)
    twin = keras.Sequential([keras.Input(shape)] + [k for _, k in pairs if k is not None])
    for module, layer in pairs:  # frozen torch parameters (a whitening stem) stay frozen
        _mirror_frozen(module, layer)
    return twin


_KERAS_NAMES = {"weight": ("kernel", "gamma"), "bias": ("bias", "beta")}


def _mirror_frozen(module: nn.Module, layer) -> None:
    """Freeze the Keras variable of every torch parameter with ``requires_grad=False``."""
    for name, param in module.named_parameters(recurse=False):
        if param.requires_grad:
            continue
        for keras_name in _KERAS_NAMES.get(name, ()):
            variable = getattr(layer, keras_name, None)
            if variable is not None:
                variable.trainable = False
                variable.value.requires_grad_(False)  # no gradient computed, as in torch
                break
        else:
            raise ValueError(f"keras twin: frozen {type(module).__name__}.{name} not mirrored")


def param_counts(keras_model) -> dict[str, int]:
    """``{"total", "trainable"}`` scalars of a Keras model, as PyTorch counts parameters:
    batch-norm moving statistics (buffers in PyTorch) are left out of the total."""
    buffers = ("moving_mean", "moving_variance")
    parameters = [v for v in keras_model.weights if v.path.split("/")[-1] not in buffers]
    return {
        "total": sum(math.prod(v.shape) for v in parameters),
        "trainable": sum(math.prod(v.shape) for v in parameters if v.trainable),
    }
