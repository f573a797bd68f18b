"""The model registry: ``register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from globalpool.models.classifier import Classifier
from globalpool.models.external import create_external_model, is_external
from globalpool.models.sizing import check_in_chans, size_pair

__all__ = ["ModelEntry", "create_model", "list_models", "model_entry", "register_model"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    backbone_cls: type[nn.Module]
    summary: str  # one line for the CLI and docs
    default_head: str
    default_pool: str
    in_chans: int
    input_size: tuple[int, int]
    head_defaults: dict[str, dict] = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    summary: str,
    default_head: str,
    default_pool: str = "avg",
    in_chans: int = 3,
    input_size: tuple[int, int] = (32, 32),
    head_defaults: dict[str, dict] | None = None,
):
    """Class decorator registering a backbone class ``cls(in_chans=..., **kw)``."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(
            name, cls, summary, default_head, default_pool, in_chans, tuple(input_size),
            dict(head_defaults or {}),
        )  # fmt: skip
        return cls

    return deco


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ValueError naming the known models otherwise."""
    if not isinstance(name, str) or name not in _MODELS:
        raise ValueError(
            f"unknown model {name!r}; expected one of: {', '.join(_MODELS)}, or a "
            "torchvision:<name> / timm:<name> backbone (e.g. torchvision:resnet18)"
        )
    return _MODELS[name]


def create_model(
    name: str,
    num_classes: int = 10,
    *,
    head: str | None = None,
    pool: str | None = None,
    in_chans: int | None = None,
    input_size: Sequence[int] | int | None = None,
    head_kwargs: dict | None = None,
    pool_kwargs: dict | None = None,
    **kwargs,
) -> Classifier:
    """Build a registered architecture with any head and any pool.

    Args:
        name: one of :func:`list_models`, or ``"torchvision:<name>"`` / ``"timm:<name>"``
            for a torchvision or timm backbone (imported only then; they also take
            ``pretrained=True``; see :mod:`globalpool.models.external`).
        num_classes: K.
        head: "fc", "classmap" or "pool-linear"; None is the architecture's default.
        pool: any name of ``globalpool.pool.list_pools()``; None is the architecture's
            default (ignored by "fc").
        in_chans: input channels; None is the architecture's default (3; 1 for smallgap).
        input_size: (H, W) or int the model is built for; None is the default ((32, 32);
            (28, 28) for smallgap). Pooling heads also run on any size >= min_input_size.
        head_kwargs: extra head arguments (``hidden``, ``dropout``, ``kernel_size``).
        pool_kwargs: extra pool arguments (``p``, ``r``...).
        **kwargs: architecture arguments (e.g. ``widths`` for fastnet and vgg_small,
            ``drop_rate`` for nin and allcnn_c, ``norm`` for nin and smallgap).

    Returns:
        a :class:`Classifier`; ``create_model(**model.model_args)`` rebuilds it.

    Example:
        >>> import torch
        >>> model = create_model("nin", 10, pool="max")
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    if is_external(name):
        return create_external_model(
            name, num_classes, head=head, pool=pool, in_chans=in_chans, input_size=input_size,
            head_kwargs=head_kwargs, pool_kwargs=pool_kwargs, **kwargs,
        )  # fmt: skip
    entry = model_entry(name)
    in_chans = check_in_chans(entry.in_chans if in_chans is None else in_chans)
    input_size = size_pair(entry.input_size if input_size is None else input_size, "input_size")
    try:
        backbone = entry.backbone_cls(in_chans=in_chans, **kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for model {name!r}: {err}") from None
    model_args = {"name": name, "in_chans": in_chans, "input_size": list(input_size), **kwargs}
    try:
        return Classifier(
            backbone,
            num_classes,
            head=head or entry.default_head,
            pool=pool,
            in_chans=in_chans,
            input_size=input_size,
            head_kwargs=head_kwargs,
            pool_kwargs=pool_kwargs,
            head_defaults=entry.head_defaults,
            default_pool=entry.default_pool,
            model_args=model_args,
        )
    except ValueError as err:
        raise type(err)(f"model {name!r}: {err}") from None  # keeps InsufficientMemoryError
