"""``globalpool.functional``: the functional form of every global pooling operator.

Example:
    >>> import torch
    >>> from globalpool import functional as F
    >>> F.gem_pool(torch.ones(2, 8, 7, 7), p=3.0).shape
    torch.Size([2, 8])
"""

from globalpool.pool.functional import (
    attention_pool,
    avg_pool,
    avgmax_pool,
    catavgmax_pool,
    gem_pool,
    gwap_pool,
    isqrtcov_pool,
    lp_pool,
    lse_pool,
    map_pool,
    max_pool,
    mixed_pool,
    simpool,
    stats_pool,
    wildcat_pool,
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
    "simpool",
    "stats_pool",
    "wildcat_pool",
]
