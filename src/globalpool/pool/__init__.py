"""Global pooling operators: functions, modules and their registry.

This package imports nothing else of globalpool.
"""

from globalpool.pool.registry import create_pool, list_pools, pool_entry, register_pool
from globalpool.pool.modules import *  # noqa: F403  (every registered module class)

__all__ = ["create_pool", "list_pools", "pool_entry", "register_pool"]
