"""Importing torchvision and timm, and repairing one broken torchvision install.

The repair (:func:`_define_missing_ops`) is needed only when torchvision's compiled
operators do not load with the installed torch: a torchvision built for another torch,
such as PyPI's CUDA wheel beside the CPU-only torch of this project's machines. Its
import then dies with "operator torchvision::nms does not exist", though the models
need none of those operators. :func:`import_torchvision` catches exactly that error,
defines the two missing operator schemas, imports again and warns; any other failure is
raised (or reported as :class:`ExtraNotInstalled`). With a matching torchvision none of
this runs.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence

import torch

__all__ = ["INSTALL_HINT", "ExtraNotInstalled", "import_timm", "import_torchvision"]

INSTALL_HINT = "pip install 'globalpool[vision]'"


class ExtraNotInstalled(ImportError):
    """torchvision or timm is not installed (or cannot be imported)."""

    user_error = True  # the CLI prints it as one line


_STUB_LIBRARY = None  # keeps the stub op definitions alive (see _define_missing_ops)


def _purge(prefixes: Sequence[str]) -> None:
    for key in [k for k in sys.modules if k.split(".")[0] in prefixes]:
        del sys.modules[key]


def _define_missing_ops() -> None:
    """Define the schemas of the two torchvision operators that ``torchvision``'s import
    registers fake kernels for without checking that its compiled library loaded (torch
    then raises "operator torchvision::nms does not exist"). That happens when its
    compiled ops do not fit the installed torch, e.g. PyPI's CUDA torchvision wheel beside
    a CPU-only torch. The models need none of these ops; calling them still raises
    torchvision's own "Couldn't load custom C++ ops" error."""
    global _STUB_LIBRARY
    missing = [op for op in ("nms", "qnms") if not hasattr(torch.ops.torchvision, op)]
    if not missing:
        return
    _STUB_LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    for op in missing:
        _STUB_LIBRARY.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def import_torchvision():
    """``import torchvision``, or :class:`ExtraNotInstalled` naming the extra.

    A torchvision whose compiled operators do not load with this torch (a build for
    another torch or for CUDA) is still imported for its models, with a warning: see
    :func:`_define_missing_ops`.
    """
    try:
        return importlib.import_module("torchvision")
    except ImportError as err:
        raise ExtraNotInstalled(
            f"torchvision is needed for 'torchvision:' and 'timm:' models but could not be "
            f"imported ({err}); install it with: {INSTALL_HINT}"
        ) from None
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    _purge(("torchvision", "timm"))
    _define_missing_ops()
    torchvision = importlib.import_module("torchvision")
    warnings.warn(
        f"torchvision {torchvision.__version__}'s compiled operators do not load with torch "
        f"{torch.__version__} (a torchvision built for another torch, e.g. a CUDA wheel "
        "beside a CPU torch): its models work, its detection operators (nms, roi_align) "
        "do not. Install the torchvision build that matches torch to silence this.",
        stacklevel=2,
    )
    return torchvision


def import_timm():
    """``import timm`` (which imports torchvision), or :class:`ExtraNotInstalled`."""
    import_torchvision()
    try:
        return importlib.import_module("timm")
    except ImportError as err:
        raise ExtraNotInstalled(
            f"timm is needed for 'timm:' models but could not be imported ({err}); install "
            f"it with: {INSTALL_HINT}"
        ) from None
