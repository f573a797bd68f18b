"""Class activation maps: where in the image the evidence for a class lies.

Three ways to get a map, chosen from the model's head (see :func:`cam_method`):

- ``"classmap"``: a ``ClassMapHead`` (NIN-style: 1x1 conv to K maps, then a global pool)
  already computes one map per class; the map of the class is the CAM.
- ``"cam"``: a ``PoolLinearHead`` with average pooling (Zhou et al. 2016). Because the
  mean commutes with the linear layer, ``logit_k = mean_s(sum_c w_kc f_cs) + b_k``: the
  map ``sum_c w_kc f_c`` is the class evidence per position, bias aside.
- ``"gradcam"``: every other head (FC, max or other pools). Grad-CAM (Selvaraju et al.
  2017) on the backbone's last feature map: channel weights are the spatially averaged
  gradients of the class logit, ``map = relu(sum_c alpha_c f_c)``.

The first two come from the same forward pass as the prediction, without gradients.
Grad-CAM++, Layer-CAM, Eigen-CAM and Score-CAM (``method=``), and every gradient or
activation method at another layer (``layer=``), live in
:mod:`globalpool.analysis.cam_family`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from globalpool.analysis.cam_family import FAMILY, GRADIENT_METHODS, family_map

__all__ = ["CAM_METHODS", "cam_method", "compute_cam", "normalize_maps"]

CAM_METHODS = ("classmap", "cam", *FAMILY)


def _is_avg_pool_linear(head: nn.Module) -> bool:
    """True for a pool + linear head whose pool is the plain mean (so CAM is exact)."""
    fc = getattr(head, "fc", None)
    pool = getattr(head, "pool", None)
    if not isinstance(fc, nn.Linear) or pool is None:
        return False
    pool_name = getattr(head, "pool_name", None) or getattr(pool, "pool_name", None)
    return pool_name == "avg" and getattr(pool, "feat_mult", 1) == 1


def cam_method(model: nn.Module) -> str:
    """Which map :func:`compute_cam` computes for ``model`` by default.

    Args:
        model: a ``Classifier`` (anything with ``head``, ``forward_features`` and
            ``forward_head``).

    Returns:
        ``"classmap"`` (head has ``forward_with_maps``), ``"cam"`` (pool + linear head
        with average pooling) or ``"gradcam"`` (everything else).

    Example:
        >>> from globalpool.models import create_model
        >>> cam_method(create_model("smallgap", head="classmap"))
        'classmap'
        >>> cam_method(create_model("smallgap", head="pool-linear", pool="max"))
        'gradcam'
    """
    _check_model(model)
    head = model.head
    if callable(getattr(head, "forward_with_maps", None)):
        return "classmap"
    if _is_avg_pool_linear(head):
        return "cam"
    return "gradcam"


def _check_model(model: nn.Module) -> None:
    missing = [a for a in ("head", "forward_features", "forward_head") if not hasattr(model, a)]
    if not isinstance(model, nn.Module) or missing:
        raise TypeError(
            "compute_cam expects a globalpool Classifier (an nn.Module with head, "
            f"forward_features and forward_head); got {type(model).__name__}"
            + (f" without {', '.join(missing)}" if missing else "")
        )


def _resolve_class_idx(
    class_idx: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor
) -> torch.Tensor:
    """Class index per sample, (N,) int64 on the logits' device; None = predicted class."""
    n, k = logits.shape
    if class_idx is None:
        return logits.argmax(dim=1)
    if isinstance(class_idx, bool):
        raise TypeError(f"class_idx must be None, an int or N ints; got {class_idx!r}")
    if isinstance(class_idx, int):
        idx = torch.full((n,), class_idx, dtype=torch.long, device=logits.device)
    else:
        idx = torch.as_tensor(class_idx, device=logits.device)
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"class_idx must hold integers; got dtype {idx.dtype}")
        idx = idx.long().reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(n)
        elif idx.numel() != n:
            raise ValueError(
                f"class_idx has {idx.numel()} entries; expected 1 or one per image ({n})"
            )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
        raise ValueError(f"class_idx out of range: model has {k} classes (0..{k - 1})")
    return idx


def normalize_maps(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Min-max normalise every map to [0, 1] independently.

    A constant map (max - min <= eps), for example a Grad-CAM whose weighted sum is
    negative everywhere, carries no location information and becomes all zeros.

    Input shape: (N, H, W). Output shape: (N, H, W), float32, in [0, 1].

    Example:
        >>> normalize_maps(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])).tolist()
        [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    flat = maps.float().flatten(1)
    lo = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - lo
    out = torch.where(span > eps, (flat - lo) / span.clamp_min(eps), torch.zeros_like(flat))
    return out.clamp_(0.0, 1.0).view_as(maps)


@torch.no_grad()
def _forward_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    feats = model.forward_features(x)
    if not isinstance(feats, torch.Tensor) or feats.ndim != 4:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ValueError(f"forward_features must return (N, C, h, w); got {shape}")
    return feats


def compute_cam(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: int | Sequence[int] | torch.Tensor | None = None,
    *,
    raw: bool = False,
    method: str | None = None,
    layer: str | None = None,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and one class activation map per image, for a whole batch in one call.

    The model runs in eval mode (its previous mode is restored afterwards). CAM and
    class-map methods run one forward pass without gradients; Grad-CAM runs the backbone
    once without gradients and the head once with them (not under
    ``torch.inference_mode``).

    Args:
        model: a ``Classifier`` (``head``, ``forward_features``, ``forward_head``).
        x: normalised images, float (N, C, H_in, W_in), on the model's device.
        class_idx: class whose map to compute: None = each image's predicted class, an
            int for all images, or N ints (list or tensor) one per image.
        raw: if True, return the maps at the feature map's resolution (N, h, w), neither
            upsampled nor normalised (the class map itself, the weighted feature sum, or
            the ReLU'd Grad-CAM sum).
        method: None picks :func:`cam_method`; the family (``"gradcam"``,
            ``"gradcam++"``, ``"hirescam"``, ``"xgradcam"``, ``"layercam"``,
            ``"eigencam"``, ``"scorecam"``, ``"ablationcam"``) works on any head (see
            :mod:`globalpool.analysis.cam_family`); ``"classmap"`` / ``"cam"`` only where
            the head supports them.
        layer: a module name of ``model`` (``"backbone.3"``, see ``model.named_modules()``)
            whose output (N, C, h, w) the family methods use; None: the backbone's last
            feature map.
        batch_size: Score-CAM's masked images (Ablation-CAM's ablated maps) per forward
            pass.

    Returns:
        ``(logits, maps)``: logits float (N, K) detached; maps float32 (N, H_in, W_in),
        bilinearly upsampled (align_corners=False) and min-max normalised per map to
        [0, 1] (a constant map becomes all zeros, see :func:`normalize_maps`).

    Example:
        >>> from globalpool.models import create_model
        >>> model = create_model("smallgap", num_classes=3, head="classmap", in_chans=3)
        >>> logits, maps = compute_cam(model, torch.randn(2, 3, 40, 56))
        >>> logits.shape, maps.shape
        (torch.Size([2, 3]), torch.Size([2, 40, 56]))
    """
    _check_model(model)
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor (N, C, H, W); got {got}")
    auto = cam_method(model)
    method = auto if method is None else method
    if method not in CAM_METHODS:
        raise ValueError(f"method must be one of {CAM_METHODS} or None; got {method!r}")
    if method not in FAMILY and method != auto:
        needs = "a ClassMapHead" if method == "classmap" else "a PoolLinearHead with avg pool"
        raise ValueError(
            f"method {method!r} needs {needs}; this model's head "
            f"({type(model.head).__name__}) supports {auto!r} or one of {FAMILY}"
        )
    if layer is not None and method not in FAMILY:
        raise ValueError(
            f"method {method!r} reads the head's own maps; at layer {layer!r} use one of {FAMILY}"
        )
    if method in GRADIENT_METHODS and torch.is_inference_mode_enabled():
        raise RuntimeError(f"{method} needs gradients; call compute_cam outside inference_mode")

    was_training = model.training
    model.eval()
    try:
        if method in FAMILY:
            logits, maps = family_map(
                method, model, x, layer, class_idx, _resolve_class_idx, batch_size
            )
        else:
            logits, maps = _head_map(model, x, method, class_idx)
    finally:
        model.train(was_training)

    maps = maps.detach().float()
    if raw:
        return logits.detach(), maps
    maps = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
    return logits.detach(), normalize_maps(maps[:, 0])


def _head_map(model, x, method, class_idx) -> tuple[torch.Tensor, torch.Tensor]:
    """CAM of the head itself: the class maps of a class-map head, or the classifier-
    weighted features of an average-pool + linear head."""
    feats = _forward_features(model, x)
    head = model.head
    if method == "classmap":
        with torch.no_grad():
            logits, class_maps = head.forward_with_maps(feats)  # (N, K), (N, K, h, w)
        idx = _resolve_class_idx(class_idx, logits)
        maps = class_maps[torch.arange(len(idx), device=idx.device), idx]
        return logits, maps
    with torch.no_grad():
        logits = model.forward_head(feats)
    idx = _resolve_class_idx(class_idx, logits)
    # (N, C): w_k of each image's class, times the head's logit_scale (a bias-free head
    # then has its logit as the map's mean)
    rows = (head.fc.weight[idx] * getattr(head, "logit_scale", 1.0)).to(feats.dtype)
    maps = torch.einsum("nchw,nc->nhw", feats, rows)
    return logits, maps
