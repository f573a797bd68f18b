"""What machine this is: the CPU's name and whether it computes bf16 natively.

Timings are only meaningful beside the machine that made them, and a precision choice
only beside the hardware that runs it (bf16 autocast was 3x faster than float32 on a CPU
with AMX and 8.7x slower on one with only AVX2). Imports nothing of globalpool.
"""

from __future__ import annotations

import functools
import platform

__all__ = ["cpu_flags", "cpu_name", "machine_line", "native_bf16"]


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), else the platform's processor."""
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags`` / ARM ``Features``); empty where unknown."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def native_bf16(device: str = "cpu", flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` computes bfloat16 natively, so bf16 autocast can be faster.

    CUDA: compute capability 8.0 or newer (Ampere on). CPU: AMX tiles (``amx_bf16``),
    AVX-512 BF16 (``avx512_bf16``) or Arm's ``bf16``; without them torch emulates bf16
    through float32 conversions and autocast is slower than float32.

    Args:
        device: ``cpu`` or ``cuda`` (a ``torch.device`` string).
        flags: the CPU flags to judge (default: this CPU's, from :func:`cpu_flags`).
    """
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


def machine_line() -> str:
    """One line naming the CPU, its core count and its bf16 support, for beside a timing."""
    import os

    bf16 = "native bf16" if native_bf16("cpu") else "no native bf16"
    return f"{cpu_name()}, {os.cpu_count()} logical cores, {bf16}"
