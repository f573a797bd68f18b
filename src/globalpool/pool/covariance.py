"""iSQRT-COV: second-order (covariance) pooling with a Newton-Schulz matrix square root."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.layout import flatten_spatial, restore_layout
from globalpool.pool.registry import register_pool

__all__ = ["CovariancePool"]


@register_pool(
    "isqrtcov",
    "covariance of the features, normalised by its Newton-Schulz square root (Li et al. 2018)",
    "Sigma = X Ibar X^T, A = Sigma / tr Sigma, Y_k = Y_{k-1} (3I - Z_{k-1} Y_{k-1}) / 2, "
    "Z_k = (3I - Z_{k-1} Y_{k-1}) / 2 Z_{k-1}, y = triu(sqrt(tr Sigma) Y_N)",
)
class CovariancePool(GlobalPoolBase):
    """iSQRT-COV (P. Li, J. Xie, Q. Wang, Z. Gao, "Towards Faster Training of Global
    Covariance Pooling Networks by Iterative Matrix Square Root Normalization", CVPR 2018):
    a 1x1 convolution with batch norm and ReLU reduces the C channels to d, then
    :func:`~globalpool.pool.functional.isqrtcov_pool` pools their covariance, square-rooted
    by Newton-Schulz iterations, into its d(d+1)/2 upper-triangle values.

    The output is not one value per channel, so a class-map head cannot take it (each of
    its K maps must pool to one logit); a pool-linear head can. The paper reduces
    ResNet-50's 2048 channels to 256 (32,896 outputs).

    Args:
        channels: number of input channels C (required).
        reduced_channels: d, the channels after the reduction (default 256); None, or
            d >= C, pools the C channels as they come (no reduction layer).
        iterations: Newton-Schulz iterations N (>= 1; default 5).
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims (the paper: 2); optional bool
        mask (N, *S): padded positions are left out of the covariance and, in training,
        of the reduction's batch statistics.

    Output shape:
        (N, d(d+1)/2), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> pool = CovariancePool(64, reduced_channels=16)
        >>> pool(torch.randn(2, 64, 7, 7)).shape, pool.out_channels(64)
        (torch.Size([2, 136]), 136)
    """

    takes_compiled = False  # matmuls: no formula of its own to compile
    keeps_channels = False

    def __init__(
        self,
        channels: int | None = None,
        *,
        reduced_channels: int | None = 256,
        iterations: int = 5,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        if channels is None:
            raise ValueError(
                "isqrtcov needs channels=C (the number of input channels) for its reduction "
                "layer and output size, e.g. create_pool('isqrtcov', channels=2048)"
            )
        if reduced_channels is not None and (
            isinstance(reduced_channels, bool)
            or not isinstance(reduced_channels, int)
            or reduced_channels < 1
        ):
            raise ValueError(
                f"isqrtcov expects reduced_channels to be an int >= 1 or None, got "
                f"{reduced_channels!r}"
            )
        F.check_iterations(iterations)
        super().__init__(channels, data_format=data_format, keepdim=keepdim)
        self.iterations = iterations
        reduce = reduced_channels is not None and reduced_channels < channels
        self.dim = reduced_channels if reduce else channels
        # the paper's reduction: 1x1 conv (no bias) -> BN -> ReLU, as a matmul over channels
        # so that 1 to 3 spatial dims and both layouts share it
        self.reduce_weight = nn.Parameter(torch.empty(self.dim, channels)) if reduce else None
        self.reduce_norm = nn.BatchNorm1d(self.dim) if reduce else None
        if reduce:
            nn.init.kaiming_normal_(self.reduce_weight, mode="fan_out", nonlinearity="relu")

    def out_channels(self, in_channels: int) -> int:
        """d(d+1)/2 output features (d = the reduced channels, or ``in_channels``)."""
        dim = self.dim if self.reduce_weight is not None else in_channels
        return dim * (dim + 1) // 2

    def _reduce(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(N, C, *S) or (N, *S, C) -> (N, *S, d): 1x1 conv, batch norm, ReLU."""
        t = x.movedim(1, -1) if self.data_format == "channels_first" else x
        if t.shape[-1] != self.channels:
            raise ValueError(
                f"isqrtcov was built for {self.channels} channels, got input of shape "
                f"{tuple(x.shape)} (data_format={self.data_format!r})"
            )
        if mask is not None:  # padding may hold NaN or inf: keep it out of the batch norm
            t = t.masked_fill(~mask.unsqueeze(-1), 0.0)
        t = t @ self.reduce_weight.to(t.dtype).T
        if self.training and mask is not None:  # batch statistics of valid positions only
            out = torch.zeros_like(t)
            out[mask] = self.reduce_norm(t[mask])
        else:
            out = self.reduce_norm(t.reshape(-1, self.dim)).reshape(t.shape)
        return torch.relu(out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.reduce_weight is None:
            return F.isqrtcov_pool(x, mask, iterations=self.iterations, **self._kw())
        flat = flatten_spatial(x, mask, self.data_format, "isqrtcov")  # the pools' checks
        y = F.isqrtcov_pool(
            self._reduce(x, mask), mask, iterations=self.iterations, data_format="channels_last"
        )
        return restore_layout(y, flat, self.keepdim)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, reduced_channels={self.dim}, "
            f"iterations={self.iterations}, data_format={self.data_format!r}, "
            f"keepdim={self.keepdim}"
        )
