"""Distributed data-parallel setup for ``torchrun`` (one process per device).

``torchrun --nproc_per_node=N -m globalpool train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup_distributed` reads them,
starts the process group (gloo on CPU, NCCL on CUDA) and picks this rank's device.
Without those variables everything runs in one process and nothing here does anything.

Rules the training loop follows: every rank builds the same model from the same seed,
DDP averages gradients, each rank's loader yields its shard of every global batch,
metrics are summed over ranks with :func:`all_reduce_sum`, and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False  # we started the process group, so we end it

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    Raises ValueError when ``cuda`` is asked for on a machine without it.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but CUDA is not available here")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device must be auto, cpu or cuda; got {name!r}")


def setup_distributed(device: str = "auto") -> DistContext:
    """Read the torchrun environment, start the process group if needed, pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=torch_device)
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized_here = True
    return DistContext(rank, world_size, local_rank, torch_device, initialized_here)


def teardown_distributed(ctx: DistContext) -> None:
    """End the process group if :func:`setup_distributed` started it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``model`` when running with several processes."""
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 tensor of metric totals over all ranks (a no-op in one process)."""
    if ctx.distributed:
        values = values.to(ctx.device if ctx.device.type == "cuda" else "cpu")
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
