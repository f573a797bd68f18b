"""``Classifier``: a backbone producing feature maps and an exchangeable head."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from globalpool.heads import create_head, list_heads
from globalpool.models.memory import check_fits_memory
from globalpool.models.shape import feature_shape, min_input_size
from globalpool.models.sizing import size_pair

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """An image classifier split, as in timm, into ``forward_features`` (the backbone) and
    ``forward_head`` (an FC, class-map or pool + linear head from ``globalpool.heads``).

    Args:
        backbone: module mapping (N, in_chans, H, W) to feature maps (N, C, h, w).
        num_classes: K.
        head: head kind, one of ``globalpool.heads.list_heads()``.
        pool: pool name for the pooling heads (None: ``default_pool``); ignored by "fc".
        in_chans: input channels.
        input_size: (H, W) the model is built for; the FC head is sized from it.
        head_kwargs: extra arguments for the head, over ``head_defaults[head]``.
        pool_kwargs: extra arguments for the pool (``p``, ``r``...).
        head_defaults: per head kind, the architecture's default head arguments (used again
            by ``reset_classifier`` when the kind changes).
        default_pool: the pool used when ``pool`` is None.
        model_args: the JSON-able kwargs that rebuild this model with ``create_model``
            (None for models that no registry entry can rebuild, e.g. ``replace_head`` on a
            user module).

    Attributes:
        num_classes, num_features (C), in_chans, input_size, min_input_size (the smallest
        (H, W) ``forward`` accepts: ``input_size`` itself for the FC head), head_kind,
        pool_name (None for "fc"), model_args.
        classes (list[str]): the name of each output; "0", "1", ... until a run's
            ``model.json`` names them (:func:`globalpool.models.io.load_run`), and again
            after ``reset_classifier``.
        mean, std (list[float] | None): the per-channel normalisation (in [0, 1] pixel
            units) of the images it was trained on; None: images are fed as they are.
            Prediction, CAM, features and export read them.

    Input shape: (N, in_chans, H, W) with H, W >= min_input_size (== input_size for "fc").
    Output shape: (N, K).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> model = Classifier(backbone, 10, head="classmap", pool="max")
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        head: str = "pool-linear",
        pool: str | None = None,
        in_chans: int = 3,
        input_size: Sequence[int] | int = (32, 32),
        head_kwargs: dict | None = None,
        pool_kwargs: dict | None = None,
        head_defaults: dict[str, dict] | None = None,
        default_pool: str = "avg",
        model_args: dict | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.in_chans = int(in_chans)
        self.input_size = size_pair(input_size, "input_size")
        param = next(backbone.parameters(), None)
        check_fits_memory(
            backbone, self.in_chans, self.input_size,
            device=param.device if param is not None else "cpu",
        )  # fmt: skip
        shape = feature_shape(backbone, self.in_chans, self.input_size)
        if shape is None:
            raise ValueError(self._cannot_run_message())
        if len(shape) != 3:
            raise ValueError(
                f"the backbone must map (N, {self.in_chans}, H, W) images to feature maps "
                f"(N, C, h, w); it gives {('N', *shape)}"
            )
        self.num_features = shape[0]
        self.feature_size = shape[1:]  # (h, w) at input_size
        self._backbone_min = min_input_size(backbone, self.in_chans, self.input_size)
        self.head_defaults = copy.deepcopy(head_defaults or {})
        self.default_pool = default_pool
        self.model_args = copy.deepcopy(model_args)
        self.mean: list[float] | None = None
        self.std: list[float] | None = None
        self._set_head(num_classes, head, pool, head_kwargs or {}, pool_kwargs or {})

    def _cannot_run_message(self) -> str:
        h, w = self.input_size
        for scale in (2, 4, 8, 16, 32):  # find a size that works, to name the minimum
            if feature_shape(self.backbone, self.in_chans, (h * scale, w * scale)):
                low = min_input_size(self.backbone, self.in_chans, (h * scale, w * scale))
                return (
                    f"input size {self.input_size} is too small for this backbone; its "
                    f"minimum input size is {low}"
                )
        return (
            f"the backbone cannot run on (N, {self.in_chans}, {h}, {w}) inputs (wrong number "
            "of input channels, or an input far too small)"
        )

    @property
    def fixed_size(self) -> bool:
        """True when the head takes only its training feature size (FC): the model then
        takes only ``input_size``. The one answer every caller asks for."""
        return bool(self.head.fixed_size)

    # -- head management -------------------------------------------------------------
    def _set_head(self, num_classes, kind, pool, head_kwargs, pool_kwargs) -> None:
        if kind not in list_heads():
            raise ValueError(f"unknown head {kind!r}; expected one of: {', '.join(list_heads())}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        kwargs = {**self.head_defaults.get(kind, {}), **head_kwargs}
        if kind == "fc":
            pool, pool_kwargs = None, {}
            kwargs["feature_size"] = self.feature_size
        else:
            pool = pool or self.default_pool
            kwargs["pool"] = pool
            if pool_kwargs:
                kwargs["pool_kwargs"] = pool_kwargs
        try:
            head = create_head(kind, self.num_features, num_classes, **kwargs)
        except TypeError as err:  # an argument the head or the pool does not take
            raise TypeError(f"bad arguments for the {kind!r} head: {err}") from None
        param = next(self.backbone.parameters(), None)
        if param is not None:
            head = head.to(device=param.device, dtype=param.dtype)
        head.train(self.training)
        self.head = head
        self.num_classes = num_classes
        self.classes: list[str] = [str(k) for k in range(num_classes)]
        self.head_kind = kind
        self.pool_name = pool
        self.min_input_size = self.input_size if head.fixed_size else self._backbone_min
        self._head_kwargs, self._pool_kwargs = dict(head_kwargs), dict(pool_kwargs)
        if self.model_args is not None:
            self.model_args.update(
                num_classes=num_classes,
                head=kind,
                pool=pool,
                head_kwargs=copy.deepcopy(head_kwargs),
                pool_kwargs=copy.deepcopy(pool_kwargs),
            )

    def reset_classifier(
        self, num_classes: int, head: str | None = None, pool: str | None = None
    ) -> None:
        """Replace the head in place with a freshly initialised one.

        Args:
            num_classes: K of the new head.
            head: new head kind (None keeps the current kind and its extra arguments).
            pool: new pool (None keeps the current pool, or the architecture's default when
                the current head is "fc"); its extra arguments are kept only if unchanged.
        """
        kind = head or self.head_kind
        head_kwargs = self._head_kwargs if kind == self.head_kind else {}
        new_pool = pool or self.pool_name or self.default_pool
        pool_kwargs = self._pool_kwargs if new_pool == self.pool_name else {}
        self._set_head(num_classes, kind, new_pool, dict(head_kwargs), dict(pool_kwargs))

    # -- forward ---------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected input of shape (N, {self.in_chans}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if self.fixed_size:
            if (h, w) != self.input_size:
                raise ValueError(
                    f"this model has an FC head built for input size {self.input_size}, got "
                    f"{(int(h), int(w))}; use a pooling head for other sizes"
                )
        elif h < self.min_input_size[0] or w < self.min_input_size[1]:
            raise ValueError(
                f"input size {(int(h), int(w))} is below this model's minimum input size "
                f"{self.min_input_size}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> feature maps (N, num_features, h, w)."""
        self._check_input(x)
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature maps (N, C, h, w) -> logits (N, K), or with ``pre_logits`` the head's
        last representation before its final layer (see each head's ``pre_logits``)."""
        return self.head.pre_logits(features) if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
