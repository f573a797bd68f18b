"""CPU kernels of the pools whose plain formula (``formulas``) bench_pool.py measured slower.

Autograd functions for max, avg + max, the power means (GeM, Lp) and log-mean-exp (LSE):
each saves only its input and small per-row results, and recomputes what the backward
pass needs, instead of keeping the full-size intermediates a composite expression would
save; the elementwise passes run block by block in the CPU's cache (see
``_BLOCK_ELEMS``), and a few branches read small per-row results on the host, which is
free only on the CPU. ``dispatch`` calls them for CPU tensors alone (``KERNELS``, with the
signatures of ``formulas.FORMULAS``); every other device runs the formulas. All reduce a
3-D view ``t`` over ``dim`` (see ``layout.Flat``).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from globalpool.pool.layout import as_float

__all__ = ["KERNELS", "avg_and_max", "first_max", "log_mean_exp", "power_mean", "row_mean"]

_TINY = 1e-30  # below this a float32 sum has lost its precision to underflow
# Below this power a**p is within float32 rounding of 1 for ordinary a: GeM and Lp then
# pool log(a) by log-mean-exp (relative error of the direct form ~ 1e-7 / p).
_SMALL_P = 0.05


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half types are upcast: their range cannot hold x**p or exp(r * x) sums.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# Blocking: the kernels run their elementwise passes block by block (a few samples at a
# time, ~1 MiB of input), so the temporaries are small reused buffers that stay in the
# L2 cache, instead of full-size tensors that every pass streams through memory again
# (and that the allocator hands out as fresh, page-faulting pages). This makes the
# forward and backward passes several times faster than the same ops on whole tensors.
_BLOCK_ELEMS = 1 << 18


def _blocks(t: torch.Tensor) -> tuple[list[tuple[int, int]], int]:
    """Spans ``(start, stop)`` of dim 0 of ``t`` with about ``_BLOCK_ELEMS`` elements each."""
    n = t.shape[0]
    per_sample = t.numel() // n if n else 1
    step = max(1, min(n, _BLOCK_ELEMS // max(1, per_sample)))
    return [(s, min(n, s + step)) for s in range(0, n, step)], step


def _base(tc, out, eps, use_abs, invalid):
    """clamp_min(tc, eps) (or |tc|) into ``out``, zero at invalid positions."""
    if out.dtype == tc.dtype:
        torch.abs(tc, out=out) if use_abs else torch.clamp_min(tc, eps, out=out)
    else:
        out.copy_(tc).abs_() if use_abs else out.copy_(tc).clamp_min_(eps)
    if invalid is not None:
        out.masked_fill_(invalid, 0.0)
    return out


def _below(value: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` number below ``value``: ``x > _below(v)`` is ``x >= v``."""
    v = torch.tensor(value, dtype=dtype)
    return float(torch.nextafter(v, torch.tensor(-math.inf, dtype=dtype)))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum(a * b) of two same-shape contiguous buffers (one BLAS pass, no temporary)."""
    return torch.dot(a.reshape(-1), b.reshape(-1))


def _total(parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The sum of the per-block partial sums (0 for an empty batch)."""
    return torch.stack(parts).sum() if parts else like.new_zeros(())


class _FirstMax(torch.autograd.Function):
    """amax over ``dim``; the gradient goes to the first maximal position (flattened order)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, dim: int) -> torch.Tensor:
        y = t.amax(dim)
        ctx.save_for_backward(t, y)
        ctx.dim = dim
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        t, y = ctx.saved_tensors
        return _max_grad(t, y, grad, ctx.dim), None


def _max_grad(t, y, grad, dim, spread=None, mask=None):
    """dx of max over ``dim``: ``grad`` at the first maximal position of each row.

    With ``spread`` (broadcastable to t, size 1 along ``dim``) that is also added at every
    position (every valid one with ``mask``): the gradient of a mean taken in the same
    pass, so avg + max pools write their dx once instead of three times (two full-size
    gradients and their sum).
    """
    top, g = y.unsqueeze(dim), grad.unsqueeze(dim)
    gx = torch.empty_like(t, dtype=grad.dtype)
    hits = grad.new_empty(y.shape)  # maximal positions per row

    def add_spread(block, a, b):
        if spread is not None:
            block.add_(spread[a:b] if mask is None else torch.where(mask[a:b], spread[a:b], 0))

    # Block by block (see _blocks), so the mask is still in cache when it is counted
    # and scaled; eq writes straight into the float gradient: no bool tensor, no cast.
    spans = _blocks(t)[0]
    for a, b in spans:
        hit = torch.eq(t[a:b], top[a:b], out=gx[a:b])
        torch.sum(hit, dim, out=hits[a:b])
        add_spread(hit.mul_(g[a:b]), a, b)
    # Ties are rare except in dead (all-equal) channels; only then pay for the scan
    # that keeps the first maximal position alone.
    if bool((hits > 1).any()):
        hit = torch.eq(t, top).to(grad.dtype)
        gx = hit.mul_(hit.cumsum(dim) == 1).mul_(g)
        add_spread(gx, 0, t.shape[0])
    return gx


def _as_channels_last_4d(t: torch.Tensor) -> torch.Tensor:
    """A contiguous (N, L, C) tensor as an (N, C, 1, L) view in channels-last memory."""
    return t.permute(0, 2, 1).unsqueeze(2)


class _ChannelsLastMax(torch.autograd.Function):
    """first_max over dim 1 of a contiguous (N, L, C) view, by torch's adaptive max pool.

    In this layout torch's channels-last adaptive_max_pool2d (vectorised over C) keeps the
    first maximal index per channel, and its backward scatters the gradient there: faster
    here than masking by equality (which wins in the (N, C, L) layout).
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        y, index = torch.ops.aten.adaptive_max_pool2d(_as_channels_last_4d(t), [1, 1])
        ctx.save_for_backward(t, index)
        return y.view(t.shape[0], t.shape[2])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        t, index = ctx.saved_tensors
        n, _, c = t.shape
        g = torch.ops.aten.adaptive_max_pool2d_backward(
            grad.reshape(n, c, 1, 1), _as_channels_last_4d(t), index
        )
        return g.squeeze(2).permute(0, 2, 1)


def first_max(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Max over ``dim`` whose gradient goes to the first maximal index along ``dim``."""
    if not t.requires_grad or not torch.is_grad_enabled():
        return t.amax(dim)
    if dim == 1 and t.is_contiguous():
        return _ChannelsLastMax.apply(t)
    return _FirstMax.apply(t, dim)


_BLAS_DTYPES = (torch.float32, torch.float64)


class _RowMean(torch.autograd.Function):
    """t.mean(dim) whose backward writes dx by one broadcasting copy.

    t.mean's own backward divides an expanded gradient: in bench_pool.py's forward+backward
    "kernel speedup vs plain" column (AMD EPYC, 2 threads, three runs) this is 1.28-1.54x
    faster at 64x512x14x14 and 1.03-1.37x at 256x2048x7x7 in NCHW, level in channels-last,
    so :func:`row_mean` uses it for the (N, C, L) layout only.
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.shape, ctx.dim = t.shape, dim
        return t.mean(dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # plain ops: twice differentiable, as t.mean is
        share = (grad / ctx.shape[ctx.dim]).unsqueeze(ctx.dim)
        return grad.new_empty(ctx.shape).copy_(share.expand(ctx.shape)), None


def row_mean(t: torch.Tensor, dim: int, mask=None, count=None) -> torch.Tensor:
    """Mean over ``dim`` (over the valid positions with ``mask``; ``count`` = their number)."""
    if mask is not None:
        return torch.where(mask, t, 0.0).sum(dim) / count
    if t.requires_grad and torch.is_grad_enabled():
        # (N, L, C): t.mean's own backward, which _RowMean only matched there and which
        # needs no Python call (bench_pool.py --against timm, avg NHWC forward+backward)
        return _RowMean.apply(t, dim) if dim == 2 else t.mean(dim)
    # (the cheapest test first: this runs on every call, a few us on a small map)
    if dim == 1 and t.shape[2] >= 1024 and t.dtype in _BLAS_DTYPES and t.is_contiguous():
        # (N, L, C) rows summed by a batched vector-matrix product: 1.4-2.0x faster than
        # t.mean with 1,024-2,048 channels, 0.68-1.04x with 64-512 (AMD EPYC, 2 threads;
        # benchmarks/results/bench-row-mean.json). Not in the (N, C, L) layout, where an
        # mv was 1.6-6x slower than t.mean on the AMD EPYC, nor for a gradient (its
        # backward was up to 1.5x slower).
        length = t.shape[1]
        sums = torch.matmul(t.new_ones(1, length), t)
        return sums.view(t.shape[0], t.shape[2]).div_(length)
    return t.mean(dim)


def _mean_and_max(t, dim, mask, count):
    """``(mean, max, t)`` over ``dim`` of the valid positions, ``t`` with its invalid
    positions at -inf (what the max was taken over)."""
    avg = row_mean(t, dim, mask, count)
    if mask is not None:
        t = t.masked_fill(~mask, -math.inf)
    return avg, t.amax(dim), t


class _AvgAndMax(torch.autograd.Function):
    """(mean, max) over ``dim``; one backward pass writes dx for both (see _max_grad)."""

    @staticmethod
    def forward(ctx, t, dim, mask, count):
        avg, top, t = _mean_and_max(t, dim, mask, count)
        ctx.save_for_backward(t, top, mask, count)
        ctx.dim = dim
        return avg, top

    @staticmethod
    @once_differentiable
    def backward(ctx, g_avg, g_max):
        t, top, mask, count = ctx.saved_tensors
        dim = ctx.dim
        spread = (g_avg / (count if count is not None else t.shape[dim])).unsqueeze(dim)
        return _max_grad(t, top, g_max, dim, spread, mask), None, None, None


def avg_and_max(t: torch.Tensor, dim: int, mask=None, count=None):
    """``(mean, max)`` over ``dim`` of the valid positions; the max's gradient goes to the
    first maximal position, and the backward pass writes dx once for both."""
    if t.requires_grad and torch.is_grad_enabled():
        return _AvgAndMax.apply(t, dim, mask, count)
    # No backward to share: the two reductions alone (an autograd.Function's own call
    # costs about 5 us, as much as both reductions of a small map).
    return _mean_and_max(t, dim, mask, count)[:2]


class _PowerMean(torch.autograd.Function):
    """y = (mean_valid a**p) ** (1/p) with a = clamp_min(x, eps) (GeM) or |x| (Lp)."""

    @staticmethod
    def forward(ctx, t, p, eps, dim, mask, count, use_abs):
        out_dtype = t.dtype
        work = _work_dtype(t.dtype)
        pv = as_float(p)
        denom = count if count is not None else t.shape[dim]
        invalid = ~mask if mask is not None else None
        spans, step = _blocks(t)
        buf = t.new_empty((step, *t.shape[1:]), dtype=work)
        s = t.new_empty((t.shape[0], t.shape[3 - dim]), dtype=work)
        for a, b in spans:
            inv = invalid[a:b] if invalid is not None else None
            base = _base(t[a:b], buf[: b - a], eps, use_abs, inv)
            torch.sum(base.pow_(pv), dim, out=s[a:b])
        s = s.div_(denom)
        if pv < _SMALL_P:
            # a**p rounds to 1 for small p (p = 1e-8 gave 1.0): pool log(a) by
            # log-mean-exp instead, y = exp(lme(log a, p)) -> the geometric mean as p -> 0.
            tw = t.to(work)
            a = tw.abs() if use_abs else tw.clamp_min(eps)
            y = _lme_forward(a.log_(), pv, dim, invalid, count)[0].exp_()
        elif bool(torch.isfinite(s).all()) and bool((s > _TINY).all()):
            y = s.pow_(1.0 / pv)
        else:
            # Overflow or underflow of a**p: scale by the per-row max first, so the
            # largest term is 1 and the sum lies in [1, L] (rare: unblocked).
            tw = t.to(work)
            a = tw.abs() if use_abs else tw.clamp_min(eps)
            if invalid is not None:
                a.masked_fill_(invalid, 0.0)
            top = a.amax(dim, keepdim=True).clamp_min_(_TINY)
            s = a.div_(top).pow_(pv).sum(dim) / denom
            y = top.squeeze(dim) * s.pow_(1.0 / pv)
            y = torch.where(torch.isposinf(top.squeeze(dim)), math.inf, y)  # +inf in, +inf out
        ctx.save_for_backward(t, y, mask, count)
        ctx.p_meta = (p.shape, p.dtype) if isinstance(p, torch.Tensor) else None
        ctx.pv, ctx.eps, ctx.dim, ctx.use_abs = pv, eps, dim, use_abs
        return y.to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        t, y, mask, count = ctx.saved_tensors
        pv, eps, dim, use_abs = ctx.pv, ctx.eps, ctx.dim, ctx.use_abs
        work = y.dtype
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        denom = count if count is not None else t.shape[dim]
        invalid = ~mask if mask is not None else None
        gy = grad.to(work)
        y_safe = y.clamp_min(torch.finfo(work).tiny).unsqueeze(dim)  # y near 1e-30 is exact
        # With r = a / y: dy/dx = r**(p-1) / n * da/dx and dy/dp = y / p * mean(r**p log r);
        # r <= n**(1/p) so neither can overflow.
        scale = (gy / denom).unsqueeze(dim)
        # of sum r**p log r, per row; the 1/p comes last: that sum is O(p) as p -> 0, and
        # y / p first overflowed (y = 1e37, p = 1e-6) where the gradient is finite
        weight = (gy * y / denom).unsqueeze(dim)
        # clamp_min passes the gradient where x >= eps (as torch.clamp does), i.e. x > below
        below = _below(eps, work)
        gx = torch.empty_like(t) if need_x else None
        spans, step = _blocks(t)
        r_buf = t.new_empty((step, *t.shape[1:]), dtype=work)
        log_buf = torch.empty_like(r_buf) if need_p else None
        x_buf = torch.empty_like(r_buf) if work != t.dtype else None
        parts = []
        for a, b in spans:
            inv = invalid[a:b] if invalid is not None else None
            tc = t[a:b] if x_buf is None else x_buf[: b - a].copy_(t[a:b])
            r = _base(tc, r_buf[: b - a], eps, use_abs, inv).div_(y_safe[a:b])
            if need_p:
                term = log_buf[: b - a]
                if use_abs:  # r**p log r, 0 where r = 0
                    torch.xlogy(torch.pow(r, pv, out=term), r, out=term)
                    parts.append(term.mul_(weight[a:b]).sum())
                elif inv is not None:  # r log r, 0 at the invalid (r = 0) positions
                    torch.xlogy(r, r, out=term).mul_(weight[a:b])
                else:  # r >= eps / y > 0
                    torch.log(r, out=term).mul_(r).mul_(weight[a:b])
            q = r.pow_(pv - 1.0)
            if inv is not None:
                q.masked_fill_(inv, 0.0)
            if need_p and not use_abs:
                parts.append(_dot(q, term))
            if need_x:
                out = gx[a:b] if gx.dtype == work else q
                if use_abs:
                    torch.mul(torch.copysign(q, tc, out=q), scale[a:b], out=out)
                else:
                    q.mul_(scale[a:b])
                    torch.ops.aten.threshold_backward.grad_input(q, tc, below, grad_input=out)
                if out is q:
                    gx[a:b].copy_(q)
        gp = None
        if need_p:
            gp = (_total(parts, y) / pv).reshape(ctx.p_meta[0]).to(ctx.p_meta[1])
        return gx, gp, None, None, None, None, None


def power_mean(
    t: torch.Tensor,
    p: float | torch.Tensor,
    dim: int,
    *,
    eps: float = 0.0,
    mask: torch.Tensor | None = None,
    count: torch.Tensor | None = None,
    use_abs: bool = False,
) -> torch.Tensor:
    """Power mean over ``dim`` of clamp_min(t, eps) (or |t| with ``use_abs``); see _PowerMean."""
    return _PowerMean.apply(t, p, eps, dim, mask, count, use_abs)


def _lme_forward(t, rv, dim, invalid, count):
    """Forward of :class:`_LogMeanExp`: ``(y, spread, top, total)`` in the work dtype.

    Shifted by the per-row max of x (not of r * x, which overflows for r * x > 3.4e38):
    z = r * (x - top) <= 0, total = sum exp(z), y = top + log(total / n) / r. For r < 1,
    rows close to average pooling (total / n > 1/2: r * (top - x) small) take log1p of
    the mean of expm1(z) instead, which keeps the digits that 1 + tiny loses (r = 1e-8
    gives the mean, not the max). A row whose max is +inf pools to +inf.
    """
    work = _work_dtype(t.dtype)
    spans, step = _blocks(t)
    z_buf = t.new_empty((step, *t.shape[1:]), dtype=work)
    rows = (t.shape[0], t.shape[3 - dim])
    top = t.new_empty(rows, dtype=work).unsqueeze(dim)  # max of x, per row
    total = t.new_empty(rows, dtype=work)  # sum of exp(r * (x - top))
    for a, b in spans:
        if invalid is None and work == t.dtype:  # x itself: no copy into the buffer
            torch.amax(t[a:b], dim, keepdim=True, out=top[a:b])
            z = torch.sub(t[a:b], top[a:b], out=z_buf[: b - a])
        else:
            z = z_buf[: b - a].copy_(t[a:b])
            if invalid is not None:
                z.masked_fill_(invalid[a:b], -math.inf)
            torch.amax(z, dim, keepdim=True, out=top[a:b])
            z.sub_(top[a:b])
        torch.sum(z.mul_(rv).exp_(), dim, out=total[a:b])
    n = count.to(work) if count is not None else float(t.shape[dim])
    mean = total / n
    spread = mean.log() / rv  # y - top
    # log's ~6e-8 error divided by r >= 1 stays within y's own rounding (as in
    # formulas.log_mean_exp_shifted); below 1 it is blown up, so there rows near the mean
    # take log1p of the mean of expm1(z).
    near = mean > 0.5 if rv < 1.0 else None
    if near is not None and bool(near.any()):
        m1 = t.new_empty(rows, dtype=work)  # sum of expm1(z) over the valid positions
        for a, b in spans:
            z = z_buf[: b - a].copy_(t[a:b]).sub_(top[a:b]).mul_(rv).expm1_()
            if invalid is not None:
                z.masked_fill_(invalid[a:b], 0.0)
            torch.sum(z, dim, out=m1[a:b])
        spread = torch.where(near, torch.log1p(m1 / n) / rv, spread)
    top_row = top.squeeze(dim)
    # A row whose max is +inf pools to +inf; one of only -inf (log 0 in GeM) to -inf.
    y = torch.where(torch.isinf(top_row), top_row, top_row + spread)
    return y, spread, top, total


class _LogMeanExp(torch.autograd.Function):
    """y = (1/r) * log(mean_valid exp(r * x)), via a max shift: no overflow for any x."""

    @staticmethod
    def forward(ctx, t, r, dim, mask, count):
        rv = as_float(r)
        invalid = ~mask if mask is not None else None
        y, spread, top, total = _lme_forward(t, rv, dim, invalid, count)
        # The backward pass reuses the shift and the sum, so its softmax weights are
        # normalised exactly even where x - y would cancel (|x| ~ 1e4 in float32).
        ctx.save_for_backward(t, spread, top, total, mask)
        ctx.r_meta = (r.shape, r.dtype) if isinstance(r, torch.Tensor) else None
        ctx.rv, ctx.dim = rv, dim
        return y.to(t.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        t, spread, top, total, mask = ctx.saved_tensors
        rv, dim = ctx.rv, ctx.dim
        work = total.dtype
        need_x, need_r = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        invalid = ~mask if mask is not None else None
        gy = grad.to(work)
        g = (gy / total).unsqueeze(dim)
        gx = torch.empty_like(t) if need_x else None
        spans, step = _blocks(t)
        z_buf = t.new_empty((step, *t.shape[1:]), dtype=work)
        w_buf = None if need_x and work == t.dtype else torch.empty_like(z_buf)
        parts = []
        for a, b in spans:
            # z = r * (x - top); the gradient is the softmax weight exp(z) / total * grad
            z = z_buf[: b - a].copy_(t[a:b]).sub_(top[a:b]).mul_(rv)
            if invalid is not None:
                z.masked_fill_(invalid[a:b], -math.inf)
            w = torch.exp(z, out=gx[a:b] if w_buf is None else w_buf[: b - a]).mul_(g[a:b])
            if need_r:
                # dy/dr = (sum_s softmax * (x - top) - (y - top)) / r, and
                # sum_s grad * softmax * (x - top) = sum gx * z / r: one dot product
                # over small shifted terms (no cancellation of large x against y).
                if invalid is not None:
                    z.masked_fill_(invalid[a:b], 0.0)
                parts.append(_dot(w, z))
            if need_x and w_buf is not None:
                gx[a:b].copy_(w)
        gr = None
        if need_r:
            gr = (_total(parts, total) / rv - (gy * spread).sum()) / rv
            gr = gr.reshape(ctx.r_meta[0]).to(ctx.r_meta[1])
        return gx, gr, None, None, None


def log_mean_exp(
    t: torch.Tensor,
    r: float | torch.Tensor,
    dim: int,
    *,
    mask: torch.Tensor | None = None,
    count: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1/r) log mean exp(r t) over ``dim`` (valid positions only with ``mask``)."""
    if (t.requires_grad or getattr(r, "requires_grad", False)) and torch.is_grad_enabled():
        return _LogMeanExp.apply(t, r, dim, mask, count)
    # No backward: the forward alone (the autograd Function's own call costs ~20 us, a
    # few percent of a small map's forward; bench_pool.py --against timm)
    invalid = ~mask if mask is not None else None
    return _lme_forward(t, as_float(r), dim, invalid, count)[0].to(t.dtype)


# The kernels with the signatures of formulas.FORMULAS: (t, dim, mask, count, *params).


def _max(t, dim, mask, count):
    if mask is not None:
        t = t.masked_fill(~mask, -math.inf)
    return first_max(t, dim)


def _avgmax(t, dim, mask, count):
    avg, top = avg_and_max(t, dim, mask, count)
    return (avg + top).mul_(0.5)


def _catavgmax(t, dim, mask, count):
    return torch.cat(avg_and_max(t, dim, mask, count), 1)


def _mixed(t, dim, mask, count, alpha):
    avg, top = avg_and_max(t, dim, mask, count)
    # where: an +inf input makes avg and max +inf, and inf - inf would be NaN
    return torch.where(torch.isinf(top) & (top == avg), top, avg + alpha * (top - avg))


def _gem(t, dim, mask, count, p, eps):
    return power_mean(t, p, dim, eps=eps, mask=mask, count=count)


def _lp(t, dim, mask, count, p):
    return power_mean(t, p, dim, mask=mask, count=count, use_abs=True)


def _lse(t, dim, mask, count, r):
    return log_mean_exp(t, r, dim, mask=mask, count=count)


KERNELS = {
    "avg": row_mean,
    "max": _max,
    "avgmax": _avgmax,
    "catavgmax": _catavgmax,
    "mixed": _mixed,
    "gem": _gem,
    "lp": _lp,
    "lse": _lse,
}
