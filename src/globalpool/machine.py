"""What machine this is: the CPU's name and whether it computes bf16 natively.

Timings are only meaningful beside the machine that made them, and a precision choice
only beside the hardware that runs it (bf16 autocast was 3x faster than float32 on a CPU
with AMX and 8.7x slower on one with only AVX2). Imports nothing of globalpool.
"""

from __future__ import annotations

import functools
import os
import platform

__all__ = [
    "caps_prefix", "cpu_flags", "cpu_name", "isa_caps", "machine_line", "memory_available",
    "native_bf16",
]  # fmt: skip

# Environment variables that cap the instruction set torch uses below what the CPU has
# (how an AVX2-only CPU is emulated on a newer one): ATen's vector kernels and oneDNN's.
ISA_CAP_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# Caps under which bf16 has no fast path: ATen levels without AVX-512, oneDNN levels
# before AVX512_CORE_BF16 (its bf16 dot products start there).
_CAPS_WITHOUT_BF16 = {
    "ATEN_CPU_CAPABILITY": {"default", "avx2"},
    "ONEDNN_MAX_CPU_ISA": {"sse41", "avx", "avx2", "avx2_vnni", "avx2_vnni_2", "avx512_core",
                           "avx512_core_vnni"},
}  # fmt: skip
_CAPS_WITHOUT_BF16["DNNL_MAX_CPU_ISA"] = _CAPS_WITHOUT_BF16["ONEDNN_MAX_CPU_ISA"]


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


def isa_caps() -> dict[str, str]:
    """The instruction-set caps set in this process's environment (``ATEN_CPU_CAPABILITY``,
    ``ONEDNN_MAX_CPU_ISA``, ``DNNL_MAX_CPU_ISA``), e.g. ``{"ATEN_CPU_CAPABILITY": "avx2"}``
    when an AVX2-only CPU is emulated; empty when torch uses all the CPU has."""
    return {name: os.environ[name] for name in ISA_CAP_VARIABLES if os.environ.get(name)}


def caps_prefix(caps: dict[str, str]) -> str:
    """``caps`` as environment assignments before a command, e.g.
    ``"ATEN_CPU_CAPABILITY=avx2 "`` (empty for no caps), so a recorded command reruns
    under the caps it ran under."""
    return "".join(f"{name}={value} " for name, value in caps.items())


def native_bf16(
    device: str = "cpu",
    flags: frozenset[str] | None = None,
    caps: dict[str, str] | None = None,
) -> bool:
    """Whether ``device`` computes bfloat16 natively, so bf16 autocast can be faster.

    CUDA: compute capability 8.0 or newer (Ampere on). CPU: AMX tiles (``amx_bf16``),
    AVX-512 BF16 (``avx512_bf16``) or Arm's ``bf16``; without them torch emulates bf16
    through float32 conversions and autocast is slower than float32.

    Args:
        device: ``cpu`` or ``cuda`` (a ``torch.device`` string).
        flags: the CPU flags to judge (default: this CPU's, from :func:`cpu_flags`).
        caps: instruction-set caps (default: this process's, from :func:`isa_caps`); a
            cap below bf16 (e.g. ``ONEDNN_MAX_CPU_ISA=AVX2``) makes the CPU answer False,
            as the CPU it emulates would.
    """
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    flags = cpu_flags() if flags is None else flags
    caps = isa_caps() if caps is None else caps
    if any(caps.get(name, "").lower() in low for name, low in _CAPS_WITHOUT_BF16.items()):
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


def machine_line() -> str:
    """One line naming the CPU, its core count and its bf16 support, for beside a timing;
    instruction-set caps in the environment (an emulated older CPU) are named too."""
    bf16 = "native bf16" if native_bf16("cpu") else "no native bf16"
    caps = caps_prefix(isa_caps()).strip()
    capped = f", instruction set capped by {caps}" if caps else ""
    return f"{cpu_name()}, {os.cpu_count()} logical cores, {bf16}{capped}"


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _meminfo_available() -> int | None:
    """/proc/meminfo's MemAvailable (what can be allocated without swapping), in bytes."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_available(device="cpu") -> int | None:
    """Bytes that ``device`` can still allocate, or None where that cannot be read.

    CUDA: the free memory of the card (``torch.cuda.mem_get_info``). CPU: the smaller of
    the system's MemAvailable and what this process's cgroup (a container's limit) has left.
    """
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    if kind != "cpu":
        return None
    known = [_meminfo_available()]
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        known.append(max(limit - used, 0))
    known = [k for k in known if k is not None]
    if not known:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return min(known)
