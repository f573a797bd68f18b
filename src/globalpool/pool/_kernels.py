"""Autograd functions behind the max, power-mean (GeM, Lp) and log-mean-exp (LSE) pools.

Each saves only its input and its small output, and recomputes what the backward pass
needs, instead of keeping the full-size intermediates a composite expression would save.
All of them reduce a 3-D view ``t`` over ``dim`` (see ``_layout.Flat``).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

__all__ = ["first_max", "log_mean_exp", "power_mean"]

_TINY = 1e-30  # below this a float32 sum has lost its precision to underflow


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half types are upcast: their range cannot hold x**p or exp(r * x) sums.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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
        dim = ctx.dim
        # eq straight into a float buffer: one pass instead of a bool tensor plus a cast
        hit = torch.eq(t, y.unsqueeze(dim), out=torch.empty_like(t, dtype=grad.dtype))
        # Ties are rare except in dead (all-equal) channels; only then pay for the scan
        # that keeps the first maximal position alone.
        if bool((hit.sum(dim) > 1).any()):
            hit.mul_(hit.cumsum(dim) == 1)
        return hit.mul_(grad.unsqueeze(dim)), None


def first_max(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Max over ``dim`` whose gradient goes to the first maximal index along ``dim``."""
    if not torch.is_grad_enabled() or not t.requires_grad:
        return t.amax(dim)
    return _FirstMax.apply(t, dim)


class _PowerMean(torch.autograd.Function):
    """y = (mean_valid a**p) ** (1/p) with a = clamp_min(x, eps) (GeM) or |x| (Lp)."""

    @staticmethod
    def forward(ctx, t, p, eps, dim, mask, count, use_abs):
        out_dtype = t.dtype
        tw = t.to(_work_dtype(t.dtype))
        pv = _scalar(p)
        denom = count if count is not None else tw.shape[dim]

        def base() -> torch.Tensor:
            a = tw.abs() if use_abs else tw.clamp_min(eps)
            if mask is not None:
                a.masked_fill_(~mask, 0.0)
            return a

        a = base()
        s = a.pow_(pv).sum(dim) / denom
        if bool(torch.isfinite(s).all()) and bool((s > _TINY).all()):
            y = s.pow_(1.0 / pv)
        else:
            # Overflow or underflow of a**p: scale by the per-row max first, so the
            # largest term is 1 and the sum lies in [1, L].
            a = base()
            top = a.amax(dim, keepdim=True).clamp_min_(_TINY)
            s = a.div_(top).pow_(pv).sum(dim) / denom
            y = top.squeeze(dim) * s.pow_(1.0 / pv)
        ctx.save_for_backward(t, y, mask, count)
        ctx.p_meta = (p.shape, p.dtype) if isinstance(p, torch.Tensor) else None
        ctx.pv, ctx.eps, ctx.dim, ctx.use_abs = pv, eps, dim, use_abs
        return y.to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        t, y, mask, count = ctx.saved_tensors
        pv, eps, dim, use_abs = ctx.pv, ctx.eps, ctx.dim, ctx.use_abs
        tw = t.to(y.dtype)
        denom = count if count is not None else tw.shape[dim]
        y_safe = y.clamp_min(_TINY).unsqueeze(dim)
        # With r = a / y: dy/dx = r**(p-1) / n * da/dx and dy/dp = y / p * mean(r**p log r);
        # r <= n**(1/p) so neither can overflow.
        r = (tw.abs() if use_abs else tw.clamp_min(eps)).div_(y_safe)
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        q = r.pow(pv - 1.0) if need_p else r.pow_(pv - 1.0)
        gx = gp = None
        scale = (grad.to(y.dtype) / denom).unsqueeze(dim)
        if need_x:
            if use_abs:
                gx = torch.copysign(q, tw)
                if mask is not None:
                    gx.masked_fill_(~mask, 0.0)
            else:
                # clamp_min passes the gradient where x >= eps (as torch.clamp does).
                keep = tw >= eps if mask is None else (tw >= eps) & mask
                gx = torch.where(keep, q, 0.0)
            gx = gx.mul_(scale).to(t.dtype)
        if need_p:
            term = torch.xlogy(q.mul_(r), r)
            if mask is not None:
                term.masked_fill_(~mask, 0.0)
            gp = (term.sum(dim) * (grad.to(y.dtype) * y / pv) / denom).sum()
            gp = gp.reshape(ctx.p_meta[0]).to(ctx.p_meta[1])
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


class _LogMeanExp(torch.autograd.Function):
    """y = (1/r) * log(mean_valid exp(r * x)), via a max shift: no overflow for any x."""

    @staticmethod
    def forward(ctx, t, r, dim, mask, count):
        out_dtype = t.dtype
        tw = t.to(_work_dtype(t.dtype))
        rv = _scalar(r)
        z = tw * rv
        if mask is not None:
            z.masked_fill_(~mask, -math.inf)
        top = z.amax(dim, keepdim=True)
        total = z.sub_(top).exp_().sum(dim)
        log_n = count.log() if count is not None else math.log(tw.shape[dim])
        y = (top.squeeze(dim) + total.log() - log_n) / rv
        # The backward pass reuses the shift and the sum, so its softmax weights are
        # normalised exactly even where x - y would cancel (|x| ~ 1e4 in float32).
        ctx.save_for_backward(t, y, top, total, mask)
        ctx.r_meta = (r.shape, r.dtype) if isinstance(r, torch.Tensor) else None
        ctx.rv, ctx.dim = rv, dim
        return y.to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        t, y, top, total, mask = ctx.saved_tensors
        rv, dim = ctx.rv, ctx.dim
        tw = t.to(y.dtype)
        # softmax weights w = exp(r x - top) / total
        w = (tw * rv).sub_(top)
        if mask is not None:
            w.masked_fill_(~mask, -math.inf)
        w.exp_()
        g = grad.to(y.dtype) / total
        gr = None
        if ctx.needs_input_grad[1]:
            weighted_x = (w * tw).sum(dim) / total
            gr = (grad.to(y.dtype) * (weighted_x - y) / rv).sum()
            gr = gr.reshape(ctx.r_meta[0]).to(ctx.r_meta[1])
        gx = w.mul_(g.unsqueeze(dim)).to(t.dtype) if ctx.needs_input_grad[0] else None
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
    return _LogMeanExp.apply(t, r, dim, mask, count)
