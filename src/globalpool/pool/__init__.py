"""Global pooling operators: functional forms, nn.Modules and their registry.

Registered names (``list_pools()``): avg, max, avgmax, catavgmax, gem, lse, lp, mixed,
attention, wildcat, simpool, map, isqrtcov, stats, gwap. This package imports nothing else
of globalpool.
"""

# Import order = registration order = list_pools() order, hence no sorting.
from globalpool.pool.registry import create_pool, list_pools, pool_entry, register_pool  # noqa: I001
from globalpool.pool.avg_max import (
    GlobalAvgPool,
    GlobalMaxPool,
    GlobalAvgMaxPool,
    GlobalCatAvgMaxPool,
)
from globalpool.pool.gem import GeMPool
from globalpool.pool.lse import LSEPool
from globalpool.pool.lp import LpPool
from globalpool.pool.mixed import MixedPool
from globalpool.pool.attention import AttentionPool
from globalpool.pool.wildcat import WildcatPool
from globalpool.pool.simpool import SimPool
from globalpool.pool.map import MultiheadAttentionPool
from globalpool.pool.covariance import CovariancePool
from globalpool.pool.stats import StatisticsPool
from globalpool.pool.gwap import GlobalWeightedAvgPool

from globalpool.pool import functional
from globalpool.pool.base import GlobalPoolBase, compile_pools

__all__ = [
    "AttentionPool",
    "CovariancePool",
    "GeMPool",
    "GlobalAvgMaxPool",
    "GlobalAvgPool",
    "GlobalCatAvgMaxPool",
    "GlobalMaxPool",
    "GlobalPoolBase",
    "GlobalWeightedAvgPool",
    "LSEPool",
    "LpPool",
    "MixedPool",
    "MultiheadAttentionPool",
    "SimPool",
    "StatisticsPool",
    "WildcatPool",
    "compile_pools",
    "create_pool",
    "functional",
    "list_pools",
    "pool_entry",
    "register_pool",
]
