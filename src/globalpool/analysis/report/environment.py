"""The software and the machine a report (or a reproduction) was made with."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

__all__ = ["environment_info"]


def environment_info() -> dict[str, str]:
    """Software versions and the machine: python, torch, numpy, matplotlib, globalpool,
    platform, CPU count and CUDA devices (if any)."""
    import matplotlib
    import torch

    import globalpool
    from globalpool.machine import machine_line

    info = {
        "globalpool": globalpool.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": machine_line(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = f"{torch.version.cuda}; " + ", ".join(names)
    else:
        info["cuda"] = "not available"
    return info
