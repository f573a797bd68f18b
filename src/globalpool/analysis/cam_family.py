"""The CAM family beyond the head's own maps: Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM,
Layer-CAM, Eigen-CAM, Score-CAM and Ablation-CAM, at the backbone's last feature map or at
any named layer.

Each takes activations ``A`` (N, C, h, w) of one layer and, for the gradient methods, the
gradient ``G = d score_k / d A`` of each image's class logit. ``A`` is the layer's own
output, as it left the layer: a copy is taken before anything after it runs, so an
in-place op that follows (``nn.ReLU(inplace=True)`` after a convolution) neither changes
``A`` nor moves ``G`` to its own output.

- ``gradcam`` (Selvaraju et al. 2017): ``relu(sum_c mean_s(G_c) A_c)``.
- ``gradcam++`` (Chattopadhyay et al. 2018): channel weights
  ``sum_s a_cs relu(G_cs)`` with ``a = G^2 / (2 G^2 + sum_s(A_c) G^3)`` (the exponential-
  score closed form of the paper's eq. 19, no epsilon: 0 where G = 0 or the denominator
  is 0; pytorch-grad-cam adds 1e-6 to the denominator, which moves maps by up to ~0.01);
  ``relu(sum_c w_c A_c)``.
- ``hirescam`` (Draelos and Carin 2020): ``relu(sum_c G_cs A_cs)``, the gradient times the
  activation position by position (no spatial averaging of the gradient).
- ``xgradcam`` (Fu et al. 2020): channel weights ``sum_s G_cs A_cs / sum_s A_cs``;
  ``relu(sum_c w_c A_c)``.
- ``layercam`` (Jiang et al. 2021): ``relu(sum_c relu(G_cs) A_cs)``, position by position.
- ``eigencam`` (Muhammad and Yeasin 2020): the paper's ``O V_1``: the activations
  ``O`` (h*w, C), not centred, projected on their first right singular vector ``V_1``;
  no gradient, no class, no ReLU. A singular vector's sign is arbitrary (the paper fixes
  none): it is chosen so the map sums >= 0, the side of the activations' mass.
  pytorch-grad-cam centres ``O`` first, keeps the sign the SVD returns, then applies a
  ReLU, so its map can be the negative of the object's.
- ``scorecam`` (Wang et al. 2020, Algorithm 1): each channel, upsampled to the input and
  min-max scaled to [0, 1], masks the input; the class's logit on each masked input,
  minus its logit on a baseline image (the same for every channel, so it cancels),
  softmaxed over channels, weights the channels: ``relu(sum_c w_c A_c)``. As
  pytorch-grad-cam and torch-cam; the authors' repository weights by the softmax
  probability without the channel softmax. C forward passes per image, run
  ``batch_size`` masked images at a time.
- ``ablationcam`` (Desai and Ramaswamy 2020): channel weights ``(y - y_c) / y``, where
  ``y`` is the class logit and ``y_c`` the logit with channel c of the layer's output set
  to zero (the paper's ablation; pytorch-grad-cam fills the channel with ``min - 1e7``
  on layers whose activations go negative); ``relu(sum_c w_c A_c)``. C passes of the rest
  of the network per image (only the head's at the backbone's last map), ``batch_size``
  at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FAMILY", "GRADIENT_METHODS", "activations_and_grads", "family_map"]

FAMILY = (
    "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "scorecam",
    "ablationcam",
)  # fmt: skip
GRADIENT_METHODS = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam")


def _find_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n][:12]
        raise ValueError(
            f"no layer {layer!r} in this model; layers include: {', '.join(names)}"
            + (" ..." if len(modules) > 13 else "")
        )
    return modules[layer]


def activations_and_grads(
    model: nn.Module, x: torch.Tensor, layer: str | None, class_idx, need_grad: bool, resolve
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(logits, A, G)`` of one layer: A (N, C, h, w) its output (the backbone's last
    feature map when ``layer`` is None), G the gradient of each image's class logit
    (None without ``need_grad``). ``resolve(class_idx, logits)`` picks the classes."""
    captured: list[torch.Tensor] = []

    def keep_and_pass_a_copy(_module, _inputs, out):
        # The rest of the network gets a copy: an in-place op after the layer (ReLU(inplace))
        # then changes the copy, and A and its gradient stay the layer's own.
        if isinstance(out, torch.Tensor):
            captured.append(out)
            return out.clone()
        return None

    handle = None
    if layer is not None:
        handle = _find_layer(model, layer).register_forward_hook(keep_and_pass_a_copy)
    try:
        with torch.set_grad_enabled(need_grad):
            if layer is None:
                feats = model.forward_features(x)
                if need_grad:
                    feats = feats.detach().requires_grad_(True)
                captured.append(feats)
                logits = model.forward_head(feats.clone())  # a head may start in place
            else:
                logits = model(x)
    finally:
        if handle is not None:
            handle.remove()
    if not captured or not isinstance(captured[0], torch.Tensor) or captured[0].ndim != 4:
        raise ValueError(f"layer {layer!r} must output (N, C, h, w) feature maps")
    acts = captured[0]
    idx = resolve(class_idx, logits)
    grads = None
    if need_grad:
        with torch.enable_grad():  # the caller may be under no_grad
            score = logits.gather(1, idx[:, None]).sum()  # samples independent in eval
            (grads,) = torch.autograd.grad(score, acts)
    return logits.detach(), acts.detach(), grads


def _eigen(acts: torch.Tensor) -> torch.Tensor:
    """(N, h, w): ``O V_1`` of each image, signed so that it sums >= 0."""
    n, _, h, w = acts.shape
    flat = acts.float().flatten(2).transpose(1, 2)  # O: (N, hw, C)
    _, _, vh = torch.linalg.svd(flat, full_matrices=False)
    proj = (flat @ vh[:, 0, :, None]).squeeze(-1)  # (N, hw) onto the first direction
    sign = torch.where(proj.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    return (proj * sign).view(n, h, w)


def _score_weights(
    model: nn.Module, x: torch.Tensor, acts: torch.Tensor, idx: torch.Tensor, batch_size: int
) -> torch.Tensor:
    n, c = acts.shape[:2]
    up = F.interpolate(acts.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
    flat = up.flatten(2)
    lo, hi = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
    masks = torch.where(hi > lo, (flat - lo) / (hi - lo).clamp_min(1e-12), 0.0).view_as(up)
    scores = torch.empty(n, c, device=x.device)
    with torch.no_grad():
        for i in range(n):
            masked = x[i : i + 1] * masks[i][:, None]  # (C, C_in, H, W): one per channel
            for start in range(0, c, batch_size):
                logits = model(masked[start : start + batch_size].to(x.dtype)).float()
                scores[i, start : start + batch_size] = logits[:, idx[i]]
    # Algorithm 1: softmax over channels of (logit on the masked input - logit on the
    # baseline); the baseline's logit is one number per image and cancels in the softmax
    return scores.softmax(dim=1)


def _ablation_weights(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | None,
    acts: torch.Tensor,
    logits: torch.Tensor,
    idx: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """(N, C): ``(y - y_c) / y`` for each channel c zeroed in turn (Ablation-CAM)."""
    n, c = acts.shape[:2]
    y = logits.float().gather(1, idx[:, None])  # (N, 1)
    ablated = torch.empty(n, c, device=acts.device)
    keep = 1.0 - torch.eye(c, device=acts.device, dtype=acts.dtype)[:, :, None, None]
    module = None if layer is None else _find_layer(model, layer)
    with torch.no_grad():
        for i in range(n):
            for start in range(0, c, batch_size):
                mask = keep[start : start + batch_size]  # one zeroed channel per row
                if module is None:  # the backbone's last map: only the head runs again
                    out = model.forward_head(acts[i : i + 1] * mask)
                else:  # the layer's output replaced, the rest of the network run again
                    handle = module.register_forward_hook(lambda _m, _i, o, m=mask: o * m)
                    try:
                        out = model(x[i : i + 1].expand(len(mask), *x.shape[1:]))
                    finally:
                        handle.remove()
                ablated[i, start : start + len(mask)] = out.float()[:, idx[i]]
    return (y - ablated) / torch.where(y != 0, y, 1.0)


def family_map(
    method: str,
    model: nn.Module,
    x: torch.Tensor,
    layer: str | None,
    class_idx,
    resolve,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, raw maps (N, h, w))`` of ``method`` (one of :data:`FAMILY`)."""
    if method not in FAMILY:
        raise ValueError(f"method must be one of {FAMILY}; got {method!r}")
    need_grad = method in GRADIENT_METHODS
    logits, acts, grads = activations_and_grads(model, x, layer, class_idx, need_grad, resolve)
    acts = acts.float()
    if method == "gradcam":
        weights = grads.float().mean(dim=(2, 3))
        return logits, F.relu(torch.einsum("nchw,nc->nhw", acts, weights))
    if method == "gradcam++":
        g = grads.float()
        g2, g3 = g.pow(2), g.pow(3)
        denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
        alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
        weights = (alpha * F.relu(g)).sum(dim=(2, 3))
        return logits, F.relu(torch.einsum("nchw,nc->nhw", acts, weights))
    if method == "hirescam":
        return logits, F.relu((grads.float() * acts).sum(dim=1))
    if method == "xgradcam":
        mass = acts.sum(dim=(2, 3))
        weights = (grads.float() * acts).sum(dim=(2, 3)) / torch.where(mass != 0, mass, 1.0)
        return logits, F.relu(torch.einsum("nchw,nc->nhw", acts, weights))
    if method == "layercam":
        return logits, F.relu((F.relu(grads.float()) * acts).sum(dim=1))
    if method == "eigencam":
        return logits, _eigen(acts)
    idx = resolve(class_idx, logits)
    if method == "ablationcam":
        weights = _ablation_weights(model, x, layer, acts, logits, idx, batch_size)
    else:
        weights = _score_weights(model, x, acts, idx, batch_size)
    return logits, F.relu(torch.einsum("nchw,nc->nhw", acts, weights))
