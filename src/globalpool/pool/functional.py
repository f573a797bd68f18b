"""Functional forms of every global pooling operator (also ``globalpool.functional``).

Every function takes ``x`` of shape (N, C, *S) (``data_format="channels_first"``, the
default; tensors in ``torch.channels_last`` memory format included) or (N, *S, C)
(``"channels_last"``), with 1 to 3 spatial dims S, and an optional bool ``mask`` of shape
(N, *S), True = valid position: each sample is then pooled over its valid positions only.
The result is (N, C) (2C for ``catavgmax_pool``), or with size-1 spatial dims in the
input's layout when ``keepdim=True``. Each call runs the operator's plain-torch formula
(``globalpool.pool.formulas``), or on the CPU the faster kernel measured for it
(``globalpool.pool.dispatch`` says which). Half-precision inputs are reduced in float32 where
the formula needs the range (GeM, Lp, LSE) and returned in the input dtype.

Max ties: the gradient of every max (``max_pool``, and the max parts of ``avgmax_pool``,
``catavgmax_pool``, ``mixed_pool``) goes entirely to the first maximal position in
row-major (flattened) order of the spatial dims, the same on every run.

Example:
    >>> import torch
    >>> from globalpool import functional as F
    >>> x = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> F.avg_pool(x)
    tensor([[1.5000, 5.5000]])
    >>> F.max_pool(x.permute(0, 2, 3, 1), data_format="channels_last", keepdim=True).shape
    torch.Size([1, 1, 1, 2])
"""

from __future__ import annotations

import math

import torch

from globalpool.pool.dispatch import run_pool
from globalpool.pool.layout import (
    flatten_spatial,
    host_readable,
    normalize_data_format,
    restore_layout,
)

__all__ = [
    "attention_pool",
    "avg_pool",
    "avgmax_pool",
    "catavgmax_pool",
    "gem_pool",
    "gwap_pool",
    "isqrtcov_pool",
    "lp_pool",
    "lse_pool",
    "map_pool",
    "max_pool",
    "mixed_pool",
    "normalize_data_format",
    "simpool",
    "stats_pool",
    "wildcat_pool",
]


def _checkable(value) -> bool:
    """Whether a hyper-parameter can be checked for free: a number, or a CPU tensor in
    eager mode. A tensor on an accelerator is not read back (a host sync per call); the
    modules keep theirs in range by construction (p = exp(log_p), alpha = sigmoid(w))."""
    return not isinstance(value, torch.Tensor) or host_readable(value)


def _bounds(value) -> tuple[float, float]:
    if not isinstance(value, torch.Tensor):
        return float(value), float(value)
    return float(value.detach().min()), float(value.detach().max())


def check_positive(value, name: str, op: str) -> None:
    """ValueError unless ``value`` (a number or a readable tensor) is finite and > 0."""
    if isinstance(value, bool):  # True is an int to Python, not a setting
        raise ValueError(f"{op} pool expects {name} > 0 and finite, got {value}")
    if _checkable(value):
        low = _bounds(value)[0]
        if not (math.isfinite(low) and low > 0):
            raise ValueError(f"{op} pool expects {name} > 0 and finite, got {value}")


def avg_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Global average pooling: ``y[n, c] = mean_s x[n, c, s]`` over (valid) positions.

    Args:
        x: (N, C, *S) or (N, *S, C) floating-point tensor, 1 to 3 spatial dims.
        mask: optional bool (N, *S), True = valid.
        data_format: "channels_first" (also NCL/NCHW/NCDHW) or "channels_last" (NHWC...).
        keepdim: keep the spatial dims as size 1.
        compiled: run the formula through ``torch.compile`` where that was measured
            faster for this kind of call (see ``globalpool.pool.dispatch``).

    Returns:
        (N, C), or (N, C, 1, ...) / (N, 1, ..., C) with keepdim.
    """
    f = flatten_spatial(x, mask, data_format, "avg")
    y = run_pool("avg", f.t, f.dim, f.mask, f.count, compiled=compiled)
    return restore_layout(y, f, keepdim)


def max_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Global max pooling: ``y[n, c] = max_s x[n, c, s]`` over (valid) positions.

    The gradient goes to the first maximal position (row-major spatial order) on ties.
    Args, shapes: as :func:`avg_pool`.
    """
    f = flatten_spatial(x, mask, data_format, "max")
    y = run_pool("max", f.t, f.dim, f.mask, f.count, compiled=compiled)
    return restore_layout(y, f, keepdim)


def avgmax_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Mean of global average and global max pooling: ``0.5 * (avg + max)``, (N, C).

    Args, shapes: as :func:`avg_pool`.
    """
    f = flatten_spatial(x, mask, data_format, "avgmax")
    y = run_pool("avgmax", f.t, f.dim, f.mask, f.count, compiled=compiled)
    return restore_layout(y, f, keepdim)


def catavgmax_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Global average and global max pooling concatenated: ``[avg, max]``, (N, 2C).

    Args: as :func:`avg_pool`. Output: (N, 2C), channels 0..C-1 the average, C..2C-1 the
    max (size-1 spatial dims kept with keepdim).
    """
    f = flatten_spatial(x, mask, data_format, "catavgmax")
    y = run_pool("catavgmax", f.t, f.dim, f.mask, f.count, compiled=compiled)
    return restore_layout(y, f, keepdim)


def gem_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    p: float | torch.Tensor = 3.0,
    eps: float = 1e-6,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Generalized mean (GeM): ``y = (mean_s clamp(x, eps) ** p) ** (1 / p)``.

    p = 1 is average pooling of the positive part, p -> inf tends to max pooling.
    Computed in float32 (at least) with an overflow/underflow-safe rescaling, so large
    p and half-precision inputs stay finite; differentiable in x and in a tensor p.

    Args:
        p: the power, > 0 (a float, or a 0-d / 1-element tensor to learn it).
        eps: lower clamp of x, > 0 (keeps the power of zeros and negatives defined).
        Others: as :func:`avg_pool`.
    """
    check_positive(p, "p", "gem")
    check_positive(eps, "eps", "gem")
    f = flatten_spatial(x, mask, data_format, "gem")
    y = run_pool("gem", f.t, f.dim, f.mask, f.count, p, float(eps), compiled=compiled)
    return restore_layout(y, f, keepdim)


def lp_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    p: float | torch.Tensor = 2.0,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Power-average (Lp) pooling: ``y = (mean_s |x| ** p) ** (1 / p)``.

    p = 1 is the mean absolute value, p = 2 the root mean square, p -> inf the max of |x|.
    Unlike ``torch.nn.LPPool2d`` this is a mean (not a sum) over the positions, so it does
    not grow with the spatial size, and it uses |x| so negative inputs are allowed.

    Args:
        p: the order, > 0 (float or tensor).
        Others: as :func:`avg_pool`.
    """
    check_positive(p, "p", "lp")
    f = flatten_spatial(x, mask, data_format, "lp")
    y = run_pool("lp", f.t, f.dim, f.mask, f.count, p, compiled=compiled)
    return restore_layout(y, f, keepdim)


def lse_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    r: float | torch.Tensor = 10.0,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Log-sum-exp pooling: ``y = (1 / r) * log(mean_s exp(r * x))``.

    Normalised by the number of positions, so ``avg <= y <= max``: r -> 0 gives average
    pooling, r -> inf max pooling. Computed with a max shift, so inputs of any size
    (1e4 and beyond) stay finite.

    Args:
        r: sharpness, > 0 (float or tensor).
        Others: as :func:`avg_pool`.
    """
    check_positive(r, "r", "lse")
    f = flatten_spatial(x, mask, data_format, "lse")
    y = run_pool("lse", f.t, f.dim, f.mask, f.count, r, compiled=compiled)
    return restore_layout(y, f, keepdim)


def mixed_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    alpha: float | torch.Tensor = 0.5,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Mixed pooling: ``y = alpha * max + (1 - alpha) * avg``.

    Args:
        alpha: blend in [0, 1] (float or tensor, broadcast against (N, C)).
        Others: as :func:`avg_pool`.
    """
    if _checkable(alpha) and not (_bounds(alpha)[0] >= 0.0 and _bounds(alpha)[1] <= 1.0):
        raise ValueError(f"mixed pool expects alpha in [0, 1], got {alpha}")
    f = flatten_spatial(x, mask, data_format, "mixed")
    y = run_pool("mixed", f.t, f.dim, f.mask, f.count, alpha, compiled=compiled)
    return restore_layout(y, f, keepdim)


def attention_pool(
    x: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    data_format: str = "channels_first",
    keepdim: bool = False,
) -> torch.Tensor:
    """Attention pooling: a 1x1 conv scores every position, softmax over positions, weighted sum.

    ``score[n, s] = sum_c weight[c] * x[n, c, s]``, ``a = softmax_s(score)`` (over valid
    positions only), ``y[n, c] = sum_s a[n, s] * x[n, c, s]``. A bias would cancel in the
    softmax, so there is none. With ``weight = 0`` this is average pooling.

    Args:
        weight: (C,) scoring weights (the 1x1 conv kernel), same dtype as x.
        Others: as :func:`avg_pool`.
    """
    return _softmax_weighted_average(x, weight, None, mask, data_format, keepdim, "attention")


def gwap_pool(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | float = 0.0,
    mask: torch.Tensor | None = None,
    *,
    data_format: str = "channels_first",
    keepdim: bool = False,
) -> torch.Tensor:
    """Global weighted average pooling (GWAP, Qiu 2018, its class-agnostic module).

    A 1x1 conv scores every position, a sigmoid bounds the score, and its exponential,
    normalised over positions, weights the average:
    ``m[n, s] = exp(sigmoid(sum_c weight[c] * x[n, c, s] + bias))``,
    ``a = m / sum_s m`` (valid positions only), ``y[n, c] = sum_s a[n, s] * x[n, c, s]``.
    ``a`` is ``softmax_s(sigmoid(score))``: the weights of two positions differ by at most
    a factor e, so every position keeps a share (unlike attention pooling's softmax).
    With ``weight = 0`` this is average pooling, whatever the bias.

    Args:
        weight: (C,) scoring weights (the 1x1 conv kernel), same dtype as x.
        bias: the 1x1 conv's bias, a number or a 0-d / (1,) tensor.
        Others: as :func:`avg_pool`.
    """
    return _softmax_weighted_average(x, weight, bias, mask, data_format, keepdim, "gwap")


def _softmax_weighted_average(x, weight, bias, mask, data_format, keepdim, op) -> torch.Tensor:
    """``sum_s softmax_s(g(w . x_s)) x_s``: g is the identity for attention pooling (``bias``
    None) and ``sigmoid(. + bias)`` for GWAP."""
    f = flatten_spatial(x, mask, data_format, op)
    channels = f.t.shape[3 - f.dim]
    if not isinstance(weight, torch.Tensor) or weight.numel() != channels:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"{op} pool expects weight of shape ({channels},), got {got}")
    if bias is not None and not (
        (isinstance(bias, torch.Tensor) and bias.numel() == 1)
        or (isinstance(bias, (int, float)) and not isinstance(bias, bool))
    ):
        got = tuple(bias.shape) if isinstance(bias, torch.Tensor) else repr(bias)
        raise ValueError(f"{op} pool expects a scalar bias (a number or one-element tensor), "
                         f"got {got}")  # fmt: skip
    t = f.t
    work = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype
    t = t.to(work)
    w = weight.reshape(channels).to(work)
    # (N, L) scores from (N, C, L) or (N, L, C). In the (N, C, L) layout an explicit bmm
    # with the expanded weight: matmul's broadcasting of a 1-D weight has a backward 2x
    # slower (bench_pool.py, attention rows).
    if f.dim == 2:
        score = torch.bmm(w.expand(t.shape[0], 1, channels), t).squeeze(1)
    else:
        score = torch.matmul(t, w)
    if bias is not None:
        b = bias.reshape(()).to(work) if isinstance(bias, torch.Tensor) else bias
        score = torch.sigmoid(score + b)
    if f.mask is not None:
        invalid = ~f.mask.reshape(score.shape)
        score = score.masked_fill(invalid, -math.inf)
        # Zero the masked-out positions: their weight is 0, but 0 * NaN (padding that
        # holds NaN or inf) would still be NaN.
        t = t.masked_fill(invalid.unsqueeze(1) if f.dim == 2 else invalid.unsqueeze(2), 0.0)
    attn = torch.softmax(score, dim=1)
    if f.dim == 2:
        y = torch.bmm(t, attn.unsqueeze(2)).squeeze(2)
    else:
        y = torch.bmm(attn.unsqueeze(1), t).squeeze(1)
    return restore_layout(y.to(x.dtype), f, keepdim)


def wildcat_args(k_max, k_min, alpha) -> tuple:
    """``(k_max, k_min, alpha)`` checked, ``k_min`` None resolved to ``k_max``; a
    ValueError saying what was expected otherwise (the function's and the module's check)."""
    _check_k(k_max, "k_max")
    k_min = k_max if k_min is None else k_min
    _check_k(k_min, "k_min")
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not (math.isfinite(alpha) and alpha >= 0)
    ):
        raise ValueError(f"wildcat pool expects alpha >= 0 and finite, got {alpha!r}")
    return k_max, k_min, float(alpha)


def _check_k(k, name: str) -> None:
    ok_count = isinstance(k, int) and not isinstance(k, bool) and k >= 1
    ok_fraction = isinstance(k, float) and 0.0 < k < 1.0
    if not (ok_count or ok_fraction):
        raise ValueError(
            f"wildcat pool expects {name} as a count (an int >= 1) or a fraction of the "
            f"positions (a float in (0, 1)), got {k!r}"
        )


def wildcat_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    k_max: int | float = 1,
    k_min: int | float | None = None,
    alpha: float = 0.7,
    data_format: str = "channels_first",
    keepdim: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """WILDCAT pooling (Durand et al. 2017): per map, the mean of its ``k_max`` highest
    activations plus ``alpha`` times the mean of its ``k_min`` lowest.

    Made for class maps: the highest regions are the evidence for the class, the lowest
    the evidence against it (a negative ``alpha`` is not allowed: the paper's alpha is in
    [0, 1]). ``k_max = 1, alpha = 0`` is global max pooling; ``k_max = k_min = all,
    alpha = 1`` is twice average pooling.

    Args:
        k_max: the highest positions averaged: a count (int >= 1, capped at the valid
            positions) or a fraction of the valid positions (float in (0, 1), at least 1).
        k_min: the same for the lowest positions; None: as ``k_max``.
        alpha: weight of the lowest positions' mean, >= 0 (0 skips them).
        Others: as :func:`avg_pool`; with a mask, only valid positions are ranked.
    """
    k_max, k_min, alpha = wildcat_args(k_max, k_min, alpha)
    f = flatten_spatial(x, mask, data_format, "wildcat")
    y = run_pool("wildcat", f.t, f.dim, f.mask, f.count, k_max, k_min, alpha, compiled=compiled)
    return restore_layout(y, f, keepdim)


def head_dim(pool: str, channels: int, num_heads) -> int:
    """Channels per attention head of ``pool`` (simpool, map): the one check of
    ``num_heads`` for the functions and the modules. ValueError unless it is an integer
    >= 1 that divides ``channels``."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"{pool} expects num_heads >= 1, got {num_heads!r}")
    if channels % num_heads:
        raise ValueError(f"{pool}: num_heads={num_heads} must divide the {channels} channels")
    return channels // num_heads


def simpool(
    x: torch.Tensor,
    query_weight: torch.Tensor,
    key_weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    num_heads: int = 1,
    norm_weight: torch.Tensor | None = None,
    norm_bias: torch.Tensor | None = None,
    gamma: float | None = None,
    eps: float = 1e-6,
    data_format: str = "channels_first",
    keepdim: bool = False,
) -> torch.Tensor:
    """SimPool (Psomas et al. 2023, "Keep It SimPool"): attention with GAP as the query.

    With the features ``x_s`` (C,) at each valid position s and ``z_s = LayerNorm(x_s)``:
    ``q = Wq mean_s(x_s)``, ``k_s = Wk z_s``; per head h (C / num_heads channels each)
    ``a_hs = softmax_s(q_h . k_hs / sqrt(C / num_heads))`` and ``y_h = sum_s a_hs z_hs``.
    With ``gamma``, the values are pooled as a generalised mean:
    ``y_h = (sum_s a_hs (z_hs - m + eps)^gamma)^(1 / gamma)``, m the sample's smallest
    value (the paper's code takes the smallest of the whole batch, which makes an image's
    output depend on its batch; here it does not).

    Args:
        query_weight, key_weight: (C, C) projections ``Wq``, ``Wk`` (no bias).
        num_heads: heads; must divide C.
        norm_weight, norm_bias: (C,) LayerNorm affine parameters (None: 1 and 0).
        gamma: None (attention-weighted mean) or > 0.
        eps: LayerNorm's epsilon, and the shift of the gamma form.
        Others: as :func:`avg_pool`.
    """
    f = flatten_spatial(x, mask, data_format, "simpool")
    t = f.t if f.dim == 1 else f.t.transpose(1, 2)  # (N, L, C)
    n, length = t.shape[0], t.shape[1]
    # C from the weights: a constant when traced for export, where x's sizes are not
    channels = int(query_weight.shape[0]) if isinstance(query_weight, torch.Tensor) else -1
    for name, w in (("query_weight", query_weight), ("key_weight", key_weight)):
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (t.shape[2], t.shape[2]):
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            want = f"({t.shape[2]}, {t.shape[2]})"
            raise ValueError(f"simpool expects {name} of shape {want}, got {got}")
    d = head_dim("simpool", channels, num_heads)
    if gamma is not None and not (isinstance(gamma, (int, float)) and gamma > 0):
        raise ValueError(f"simpool expects gamma > 0 or None, got {gamma!r}")
    work = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype
    t = t.to(work)
    valid = None if f.mask is None else f.mask.reshape(n, length)
    if valid is not None:  # padding may hold NaN or inf: zero it before any sum
        t = t.masked_fill(~valid[..., None], 0.0)
        count = valid.sum(1, keepdim=True).clamp_min(1).to(work)
        query = t.sum(1) / count
    else:
        query = t.mean(1)
    z = torch.nn.functional.layer_norm(
        t, (channels,), None if norm_weight is None else norm_weight.to(work),
        None if norm_bias is None else norm_bias.to(work), eps,
    )  # fmt: skip
    q = (query @ query_weight.to(work).T).view(n, num_heads, d)
    # q_h . (Wk_h z_s) = (Wk_h^T q_h) . z_s: project the one query back through Wk
    # instead of every position into keys (N C^2 multiply-adds instead of N L C^2)
    u = torch.einsum("nhd,hdc->nhc", q, key_weight.to(work).view(num_heads, d, channels))
    score = torch.einsum("nhc,nlc->nhl", u, z) / math.sqrt(d)
    if valid is not None:
        score = score.masked_fill(~valid[:, None, :], -math.inf)
    attn = torch.softmax(score, dim=2)
    values = z.view(n, length, num_heads, d)
    if gamma is None:
        y = torch.einsum("nhl,nlhd->nhd", attn, values)
    else:
        low = z if valid is None else z.masked_fill(~valid[..., None], math.inf)
        shift = low.amin(dim=(1, 2)).view(n, 1, 1, 1)
        powered = (values - shift + eps).clamp_min(eps).pow(gamma)
        y = torch.einsum("nhl,nlhd->nhd", attn, powered).pow(1.0 / gamma)
    y = y.reshape(n, channels)
    return restore_layout(y.to(x.dtype), f, keepdim)


def map_pool(
    x: torch.Tensor,
    latent: torch.Tensor,
    in_weight: torch.Tensor,
    out_weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    num_heads: int = 1,
    in_bias: torch.Tensor | None = None,
    out_bias: torch.Tensor | None = None,
    data_format: str = "channels_first",
    keepdim: bool = False,
) -> torch.Tensor:
    """Multihead attention pooling (MAP, as the pooling heads of ViT-22B and SigLIP): one
    learned query attends over the positions.

    ``q = Wq latent + bq``, ``k_s = Wk x_s + bk``, ``v_s = Wv x_s + bv``; per head h
    (C / num_heads channels) ``a_hs = softmax_s(q_h . k_hs / sqrt(C / num_heads))`` over
    the valid positions, ``o_h = sum_s a_hs v_hs``; ``y = Wo o + bo``.

    Args:
        latent: (C,) the learned query.
        in_weight: (3C, C) ``Wq``, ``Wk``, ``Wv`` stacked (as ``nn.MultiheadAttention``'s
            ``in_proj_weight``); in_bias: (3C,) or None.
        out_weight: (C, C) ``Wo``; out_bias: (C,) or None.
        num_heads: heads; must divide C.
        Others: as :func:`avg_pool`.
    """
    f = flatten_spatial(x, mask, data_format, "map")
    t = f.t if f.dim == 1 else f.t.transpose(1, 2)  # (N, L, C)
    n, length = t.shape[0], t.shape[1]
    channels = int(out_weight.shape[0]) if isinstance(out_weight, torch.Tensor) else -1
    c = t.shape[2]
    for name, w, shape in (("latent", latent, (c,)), ("in_weight", in_weight, (3 * c, c)),
                           ("out_weight", out_weight, (c, c))):  # fmt: skip
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(f"map pool expects {name} of shape {shape}, got {got}")
    d = head_dim("map pool", channels, num_heads)
    work = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype
    t = t.to(work)
    valid = None if f.mask is None else f.mask.reshape(n, length)
    if valid is not None:  # padding may hold NaN or inf: zero it before the projections
        t = t.masked_fill(~valid[..., None], 0.0)
    wq, wk, wv = in_weight.to(work).chunk(3, dim=0)
    bq, _, bv = (None, None, None) if in_bias is None else in_bias.to(work).chunk(3)
    # Reassociated so that no position is projected (N H L C multiply-adds instead of
    # N L C^2): q_h . (Wk_h x_s + bk_h) = (Wk_h^T q_h) . x_s + a constant of the head,
    # which the softmax drops; and as the weights sum to 1 over s,
    # sum_s a_hs (Wv_h x_s + bv_h) = Wv_h (sum_s a_hs x_s) + bv_h.
    q = torch.nn.functional.linear(latent.to(work), wq, bq).view(num_heads, d)
    u = torch.einsum("hd,hdc->hc", q, wk.view(num_heads, d, channels))
    score = torch.einsum("hc,nlc->nhl", u, t) / math.sqrt(d)
    if valid is not None:
        score = score.masked_fill(~valid[:, None, :], -math.inf)
    attn = torch.softmax(score, dim=2)
    pooled = torch.einsum("nhl,nlc->nhc", attn, t)  # each head's weighted mean of x
    o = torch.einsum("nhc,hdc->nhd", pooled, wv.view(num_heads, d, channels))
    if bv is not None:
        o = o + bv.view(num_heads, d)
    o = o.reshape(n, channels)
    y = torch.nn.functional.linear(
        o, out_weight.to(work), None if out_bias is None else out_bias.to(work)
    )
    return restore_layout(y.to(x.dtype), f, keepdim)


def check_iterations(iterations) -> None:
    """ValueError unless ``iterations`` is an int >= 1 (the function's and the module's
    check of isqrtcov's Newton-Schulz iterations)."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"isqrtcov expects iterations to be an int >= 1, got {iterations!r}")


def isqrtcov_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    iterations: int = 5,
    data_format: str = "channels_first",
    keepdim: bool = False,
) -> torch.Tensor:
    """iSQRT-COV (Li et al., CVPR 2018): the covariance of the features over the positions,
    normalised by its matrix square root computed by Newton-Schulz iterations.

    With X (C, M) the features at a sample's M valid positions:
    ``Sigma = X Ibar X^T``, ``Ibar = (I - 1 1^T / M) / M`` (the covariance);
    ``A = Sigma / tr(Sigma)`` (pre-normalisation, so the iterations converge);
    ``Y_0 = A, Z_0 = I``, ``T_k = (3I - Z_{k-1} Y_{k-1}) / 2``, ``Y_k = Y_{k-1} T_k``,
    ``Z_k = T_k Z_{k-1}`` (``Y_N -> A^(1/2)``); ``sqrt(tr(Sigma)) Y_N`` (post-compensation);
    the output is its upper triangle, diagonal included, row by row: C(C+1)/2 values.
    The paper defines it on 2-D maps; 1-D and 3-D inputs take the same formula over their
    positions. Half-precision inputs are computed in float32.

    Args:
        iterations: Newton-Schulz iterations N (>= 1; default 5).
        Others: as :func:`avg_pool`.

    Returns:
        (N, C(C+1)/2), or with size-1 spatial dims when keepdim.
    """
    check_iterations(iterations)
    f = flatten_spatial(x, mask, data_format, "isqrtcov")
    t = f.t if f.dim == 2 else f.t.transpose(1, 2)  # (N, C, L)
    work = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype
    t = t.to(work)
    n, channels, length = t.shape
    if f.mask is None:
        centered = t - t.mean(2, keepdim=True)
        # L from a reduction, not a Python number: exported graphs keep H and W dynamic
        count = torch.ones_like(t[:, :1]).sum(2, keepdim=True)
    else:
        valid = f.mask.reshape(n, 1, length)
        t = t.masked_fill(~valid, 0.0)  # padding may hold NaN or inf: zero it before any sum
        count = valid.sum(2, keepdim=True).to(work)
        centered = (t - t.sum(2, keepdim=True) / count).masked_fill(~valid, 0.0)
    cov = centered @ centered.transpose(1, 2) / count  # (N, C, C)
    # constant features have no covariance: their output is 0, not 0 / 0
    trace = cov.diagonal(dim1=1, dim2=2).sum(1).clamp_min(torch.finfo(work).tiny)
    y = cov / trace.view(n, 1, 1)
    eye = torch.eye(channels, dtype=work, device=t.device).expand(n, channels, channels)
    z = eye
    for _ in range(iterations):
        step = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ step, step @ z
    root = y * trace.sqrt().view(n, 1, 1)
    # the upper triangle as a gather of constant indices (ONNX has no triu_indices)
    upper = [i * channels + j for i in range(channels) for j in range(i, channels)]
    upper = torch.tensor(upper, dtype=torch.long, device=t.device)
    return restore_layout(root.flatten(1)[:, upper].to(x.dtype), f, keepdim)


def stats_pool(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    data_format: str = "channels_first",
    keepdim: bool = False,
) -> torch.Tensor:
    """Statistics pooling (Snyder et al. 2018, the x-vector's pooling layer): the mean and
    the standard deviation of each channel over the (valid) positions, ``[mean, std]``.

    ``std = sqrt(max(mean_s (x_s - mean)^2, eps))`` (the population variance, floored so
    that a constant channel has a finite gradient). Half-precision inputs are reduced in
    float32.

    Args:
        eps: the variance floor (> 0).
        Others: as :func:`avg_pool`.

    Returns:
        (N, 2C): channels 0..C-1 the means, C..2C-1 the standard deviations (size-1
        spatial dims kept with keepdim).
    """
    check_positive(eps, "eps", "stats")
    f = flatten_spatial(x, mask, data_format, "stats")
    work = torch.float32 if f.t.dtype in (torch.float16, torch.bfloat16) else f.t.dtype
    t = f.t.to(work)
    if f.mask is None:
        mean = t.mean(f.dim, keepdim=True)
        var = (t - mean).square().mean(f.dim)
    else:  # padding may hold NaN or inf: zero it before any sum
        count = f.mask.sum(f.dim, keepdim=True).to(work)
        t = t.masked_fill(~f.mask, 0.0)
        mean = t.sum(f.dim, keepdim=True) / count
        var = (t - mean).masked_fill(~f.mask, 0.0).square().sum(f.dim, keepdim=True) / count
        var = var.squeeze(f.dim)
    y = torch.cat([mean.squeeze(f.dim), var.clamp_min(eps).sqrt()], 1)
    return restore_layout(y.to(x.dtype), f, keepdim)
