"""The plain-torch form of every pooling operator: one implementation for every device.

Each function reduces the flat view of ``layout.Flat``: ``t`` of shape (N, C, L) reduced
over ``dim`` 2, or (N, L, C) reduced over ``dim`` 1, with an optional bool ``mask`` that
broadcasts against ``t`` (True = valid) and ``count``, the valid positions per sample,
(N, 1). They use only ops that autograd, ``torch.compile`` and both ONNX exporters handle,
read nothing back to the host and branch on nothing but Python values and ``requires_grad``,
so the same code runs eagerly on any device, inside a compiled graph and in an exported
one. ``dispatch`` swaps in a CPU kernel only where bench_pool.py measured one faster.

Numerics: GeM, Lp and LSE reduce in float32 (at least), after a shift or scale by the
per-row max (detached: the results are invariant to it), so no ``exp`` or power can
overflow; ``log_mean_exp_shifted`` keeps the digits lost by ``log(1 + tiny)`` near the
average regime (LSE with a small r, GeM with a small p). The max's gradient goes to the
first maximal position (``max(dim).indices``), as in the CPU kernels.

Example:
    >>> import torch
    >>> t = torch.tensor([[[1.0, 2.0, 6.0]]])  # (N, C, L) = (1, 1, 3)
    >>> avg(t, 2, None, None), max_(t, 2, None, None)
    (tensor([[3.]]), tensor([[6.]]))
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "FORMULAS",
    "avg",
    "avgmax",
    "catavgmax",
    "expm1",
    "log_mean_exp_shifted",
    "lse",
    "max_",
    "mixed",
    "power",
    "wildcat",
]

_TINY = 1e-30  # the floor of a ratio a / max(a) before its log (zeros of Lp stay finite)


def _work(t: torch.Tensor) -> torch.Tensor:
    # Half types are upcast: their range cannot hold x**p or exp(r * x) sums.
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _mean(values: torch.Tensor, dim: int, mask, count) -> torch.Tensor:
    """Mean over ``dim`` of the valid positions."""
    if mask is None:
        return values.mean(dim)
    return torch.where(mask, values, 0.0).sum(dim) / count


def expm1(z: torch.Tensor) -> torch.Tensor:
    """``exp(z) - 1`` for z <= 0 (-inf included), from ops every exporter knows.

    ``2 tanh(z/2) / (1 - tanh(z/2))`` is exact algebra, within an ulp or so of
    ``torch.expm1`` for z in [-1e3, -1e-12] (tanh keeps the digits of small z and the
    denominator lies in [1, 2]), and -1 at -inf; the TorchScript ONNX exporter has no
    expm1 (nor sinh).
    """
    h = torch.tanh(z * 0.5)
    return 2.0 * h / (1.0 - h)


def log_mean_exp_shifted(z: torch.Tensor, dim: int, mask, count, scale) -> torch.Tensor:
    """``log(mean exp(z)) / scale`` over ``dim`` for shifted z <= 0 whose row max is 0.

    ``log(mean exp(z))`` is off by about one float32 ulp (6e-8), which the division by a
    small ``scale`` (LSE's r, GeM's p) blows up. So where the mean is above 1/2 (every
    z close to 0) and the scale may be below 1 (a number under 1, or a tensor), it is
    ``log1p(mean expm1(z))``, which keeps the small differences that ``log(1 + tiny)``
    rounds away (LSE as r -> 0 tends to the mean, not to the max); elsewhere
    ``log(mean exp(z))``, whose terms are not cancelled by a -1 (a peaked row).
    """
    mean_exp = _mean(z.exp(), dim, mask, count)
    if not isinstance(scale, torch.Tensor) and scale >= 1.0:
        return torch.log(mean_exp) / scale  # error ~6e-8 / scale: within y's own rounding
    # The clamp only keeps the branch not taken finite (its gradient would be 0 / 0).
    near = torch.log1p(_mean(expm1(z), dim, mask, count).clamp_min(-0.5))
    return torch.where(mean_exp > 0.5, near, torch.log(mean_exp)) / scale


def avg(t, dim, mask, count):
    """Global average: mean over the valid positions, (N, C)."""
    return _mean(t, dim, mask, count)


def max_(t, dim, mask, count):
    """Global max, (N, C); the gradient goes to the first maximal position."""
    if mask is not None:
        t = t.masked_fill(~mask, -math.inf)
    if t.requires_grad and torch.is_grad_enabled():
        return t.max(dim).values  # indices: the first maximum takes the gradient
    return t.amax(dim)  # no indices to compute


def avgmax(t, dim, mask, count):
    """``0.5 * (avg + max)``, (N, C)."""
    return 0.5 * (avg(t, dim, mask, count) + max_(t, dim, mask, count))


def catavgmax(t, dim, mask, count):
    """``[avg, max]`` along channels, (N, 2C)."""
    return torch.cat((avg(t, dim, mask, count), max_(t, dim, mask, count)), 1)


def mixed(t, dim, mask, count, alpha):
    """``alpha * max + (1 - alpha) * avg``, (N, C); alpha a float or a tensor."""
    top, mean = max_(t, dim, mask, count), avg(t, dim, mask, count)
    # where: an +inf input makes both +inf, and 0 * inf (alpha 0 or 1) would be NaN
    both_inf = (top == math.inf) & (mean == math.inf)
    return torch.where(both_inf, top, alpha * top + (1 - alpha) * mean)


def _power_value(t, dim, mask, count, p, eps, use_abs):
    """The value of :func:`power` in the work dtype, from ops every exporter knows."""
    tw = _work(t)
    a = tw.abs() if use_abs else tw.clamp_min(eps)
    if mask is not None:
        a = torch.where(mask, a, 0.0)
    top = a.amax(dim, keepdim=True).detach()
    # a / top in [0, 1] (a subnormal top included); 1 in an all-zero row (top = 0), which
    # then pools to 0 (a clamp of the mean instead made compiled Lp f+b 2-3x slower)
    ratio = torch.where(top > 0, a / torch.where(top > 0, top, 1.0), 1.0)
    if not isinstance(p, torch.Tensor) and p >= 1.0:
        # mean(ratio**p) is in [1/L, 1]: its rounding error, divided by p >= 1 in the
        # root, stays within y's own; one pow is cheaper than log + exp (compiled Lp
        # 4.6x faster in bench_pool.py).
        s = _mean(ratio.pow(p), dim, mask, count)
        y = top.squeeze(dim) * s.pow(1.0 / p)
    else:
        log_ratio = ratio.clamp_min(_TINY).log()  # <= 0
        y = top.squeeze(dim) * torch.exp(log_mean_exp_shifted(p * log_ratio, dim, mask, count, p))
    top = top.squeeze(dim)
    return torch.where(top == math.inf, top, y)  # +inf in, +inf out


class _Power(torch.autograd.Function):
    """:func:`_power_value` with its gradient in closed form.

    Autograd through the value's ops multiplies by the row max and divides by it again
    (or by p and by 1/p), and those intermediates overflow float32 for inputs near 1e37
    or p near 1e-6 where the gradient itself is finite. With r = a / y the gradient is
    dy/dx = r**(p-1) / n * da/dx and dy/dp = y * mean(r**p log r) / p, both bounded
    (r <= n**(1/p)), as the CPU kernel computes them. Once differentiable, as the kernel.
    """

    @staticmethod
    def forward(ctx, t, p, eps, dim, mask, count, use_abs):
        y = _power_value(t, dim, mask, count, p, eps, use_abs)
        ctx.save_for_backward(t, y, mask, count, p if isinstance(p, torch.Tensor) else None)
        ctx.eps, ctx.dim, ctx.use_abs, ctx.p_number = eps, dim, use_abs, p
        return y.to(t.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        t, y, mask, count, p_tensor = ctx.saved_tensors
        eps, dim, use_abs = ctx.eps, ctx.dim, ctx.use_abs
        p = p_tensor if p_tensor is not None else ctx.p_number
        p_work = p.to(y.dtype) if isinstance(p, torch.Tensor) else p
        tw = _work(t)
        a = tw.abs() if use_abs else tw.clamp_min(eps)
        n = count.to(y.dtype) if count is not None else float(t.shape[dim])
        r = a / y.clamp_min(torch.finfo(y.dtype).tiny).unsqueeze(dim)
        gy = grad.to(y.dtype)
        gx = gp = None
        if ctx.needs_input_grad[0]:
            q = r.pow(p_work - 1.0)
            # d|x|/dx = sign(x); clamp_min passes the gradient where x >= eps, as torch.clamp
            q = torch.copysign(q, tw) if use_abs else torch.where(tw >= eps, q, 0.0)
            q = q * (gy / n).unsqueeze(dim)
            if mask is not None:
                q = torch.where(mask, q, 0.0)
            gx = q.to(t.dtype)
        if ctx.needs_input_grad[1]:
            terms = torch.xlogy(r.pow(p_work), r)  # r**p log r, 0 where r = 0
            if mask is not None:
                terms = torch.where(mask, terms, 0.0)
            # mean(r**p log r) is O(p) as p -> 0: divide by p before multiplying by y
            per_row = (terms.sum(dim) / n) / p_work
            gp = (gy * y * per_row).sum().reshape(p.shape).to(p.dtype)
        return gx, gp, None, None, None, None, None


def power(t, dim, mask, count, p, eps, use_abs):
    """Power mean ``(mean a**p) ** (1/p)`` of ``a = clamp_min(t, eps)`` (GeM) or ``|t|`` (Lp).

    Computed on ``a / top``, with ``top`` the row max of a, so no power overflows: as
    ``top * mean((a / top)**p) ** (1/p)`` for a number p >= 1, else (p < 1 or a tensor)
    as ``top * exp(log_mean_exp_shifted(p * log(a / top), p))``, which tends to the
    geometric mean as p -> 0. The gradient is in closed form (:class:`_Power`), except
    in a traced graph (export), where the value's own ops are recorded.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.jit.is_scripting():
        return _power_value(t, dim, mask, count, p, eps, use_abs).to(t.dtype)
    return _Power.apply(t, p, eps, dim, mask, count, use_abs)


def lse(t, dim, mask, count, r):
    """Log-mean-exp ``(1/r) log(mean exp(r t))``, (N, C), shifted by the row max of t.

    The shift is the max of t, not of r * t (which overflows for r * t > 3.4e38).
    """
    tw = _work(t)
    if mask is not None:
        tw = tw.masked_fill(~mask, -math.inf)
    top = tw.amax(dim, keepdim=True).detach()
    shifted = tw - top
    if mask is not None:  # 0, not -inf, at masked positions: d(r * shifted)/dr stays finite
        shifted = torch.where(mask, shifted, 0.0)
    y = top.squeeze(dim) + log_mean_exp_shifted(shifted * r, dim, mask, count, r)
    top = top.squeeze(dim)
    # A row whose max is +inf pools to +inf (-inf: only -inf in it).
    return torch.where(torch.isinf(top), top, y).to(t.dtype)


def _gem(t, dim, mask, count, p, eps):
    return power(t, dim, mask, count, p, eps, False)


def _lp(t, dim, mask, count, p):
    return power(t, dim, mask, count, p, 0.0, True)


def _k_of(k, count, length):
    """How many positions ``k`` picks per row, and the most any row picks: a count (int
    >= 1, at most the valid positions) or a fraction of the valid positions (0 < k < 1,
    at least one). Returns ``(k per row, cap)``: an int for both without a mask, else a
    (N, 1, 1) tensor and the int cap of a full row."""
    cap = min(k, length) if isinstance(k, int) else max(1, round(k * length))
    if count is None:
        return cap, cap
    n = count.unsqueeze(-1)  # (N, 1, 1): broadcasts against t's (N, C, L) or (N, L, C)
    per_row = n.clamp(max=k) if isinstance(k, int) else (n * k).round().clamp(min=1)
    return per_row, cap


def _mean_of_extremes(t, dim, mask, count, k, largest: bool):
    """Mean over ``dim`` of the ``k`` largest (or smallest) valid values, (N, C): one
    top-k of the row's cap, then a rank mask for rows with fewer valid positions."""
    per_row, cap = _k_of(k, count, t.shape[dim])
    if cap == 1:  # the max (or min) itself: one reduction, 18-46x faster than a top-k
        return max_(t, dim, mask, count) if largest else -max_(-t, dim, mask, count)
    if mask is not None:  # invalid positions rank last
        t = t.masked_fill(~mask, -math.inf if largest else math.inf)
    picked = t.topk(cap, dim, largest=largest).values
    if not isinstance(per_row, torch.Tensor):
        return picked.mean(dim)
    shape = [1, 1, 1]
    shape[dim] = cap
    rank = torch.arange(cap, device=t.device).view(shape)
    return torch.where(rank < per_row, picked, 0.0).sum(dim) / per_row.squeeze(dim)


def wildcat(t, dim, mask, count, k_max, k_min, alpha):
    """WILDCAT (Durand et al. 2017): the mean of the ``k_max`` largest valid values plus
    ``alpha`` times the mean of the ``k_min`` smallest, (N, C)."""
    top = _mean_of_extremes(t, dim, mask, count, k_max, largest=True)
    if alpha == 0:
        return top
    return top + alpha * _mean_of_extremes(t, dim, mask, count, k_min, largest=False)


# name -> formula(t, dim, mask, count, *hyper-parameters)
FORMULAS = {
    "avg": avg,
    "max": max_,
    "avgmax": avgmax,
    "catavgmax": catavgmax,
    "mixed": mixed,
    "gem": _gem,
    "lp": _lp,
    "lse": lse,
    "wildcat": wildcat,
}
