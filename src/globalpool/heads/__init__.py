"""Classification heads: the FC stack, the NIN class-map head and pool + linear.

Imports only ``globalpool.pool``.
"""

from globalpool.heads.base import Head
from globalpool.heads.classmap import ClassMapHead
from globalpool.heads.factory import create_head, list_heads
from globalpool.heads.fc import FCHead
from globalpool.heads.pool_linear import PoolLinearHead

__all__ = ["ClassMapHead", "FCHead", "Head", "PoolLinearHead", "create_head", "list_heads"]
