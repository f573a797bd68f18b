"""Drawing class activation maps: heat-map overlays and the image-by-head CAM grid.

Overlays are plain uint8 arrays written with Pillow at the input image's size (one map
pixel per image pixel); the grid is a matplotlib ``Figure`` built without pyplot, so no
global figure state or GUI backend is involved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from globalpool.analysis.cam import cam_method, compute_cam
from globalpool.atomic import atomic_path

__all__ = [
    "cam_grid_figure",
    "denormalize",
    "heatmap_rgb",
    "overlay_heatmap",
    "save_figure",
    "save_overlay",
    "save_png",
    "to_hwc_uint8",
]


def to_hwc_uint8(image) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB (grey images are repeated to 3 channels).

    Args:
        image: uint8 tensor or array, (C, H, W) with C in {1, 3} (the project's layout),
            (H, W, C), or (H, W). A float image is taken to be in [0, 1].

    Output shape: (H, W, 3) uint8.
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"image must be uint8 or float in [0, 1]; got dtype {arr.dtype}")
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif (
        arr.ndim == 3
        and arr.shape[0] in (1, 3)
        and not (arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3))
    ):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(
            f"image must be (C, H, W), (H, W, C) with C in (1, 3), or (H, W); got {arr.shape}"
        )
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def get_colormap(name: str):
    """The matplotlib colormap ``name``; a ValueError naming some known ones otherwise."""
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(
            f"unknown matplotlib colormap {name!r}; e.g. jet, viridis, magma, gray"
        ) from None


def heatmap_rgb(cam, cmap: str = "jet") -> np.ndarray:
    """Colour a (H, W) map in [0, 1] with a matplotlib colormap.

    Output shape: (H, W, 3) uint8.

    Example:
        >>> heatmap_rgb(np.zeros((4, 5))).shape
        (4, 5, 3)
    """

    arr = cam.detach().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam)
    if arr.ndim != 2:
        raise ValueError(f"cam must be (H, W); got shape {arr.shape}")
    colormap = get_colormap(cmap)
    rgba = colormap(np.clip(arr.astype(np.float64), 0.0, 1.0))
    return np.rint(rgba[..., :3] * 255.0).astype(np.uint8)


def _resize_map(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    t = torch.as_tensor(cam, dtype=torch.float32)[None, None]
    t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    return t[0, 0].numpy()


def overlay_heatmap(image, cam, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend an image with the heat map of ``cam``: ``(1 - alpha) * image + alpha * heat``.

    Args:
        image: uint8 image, any layout :func:`to_hwc_uint8` accepts, (H, W) spatial size.
        cam: (h, w) map in [0, 1]; bilinearly resized to (H, W) if it differs.
        alpha: weight of the heat map, in [0, 1].
        cmap: matplotlib colormap name.

    Output shape: (H, W, 3) uint8, the image's size.

    Example:
        >>> overlay_heatmap(np.zeros((3, 8, 6), np.uint8), np.ones((2, 2))).shape
        (8, 6, 3)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    rgb = to_hwc_uint8(image)
    arr = cam.detach().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam)
    if arr.ndim != 2:
        raise ValueError(f"cam must be (H, W); got shape {arr.shape}")
    h, w = rgb.shape[:2]
    if arr.shape != (h, w):
        arr = _resize_map(arr, h, w)
    heat = heatmap_rgb(arr, cmap).astype(np.float32)
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * heat
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike, rgb) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array to ``path`` as PNG, atomically."""
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"save_png needs uint8 (H, W[, 3]); got {arr.dtype} {arr.shape}")
    img = Image.fromarray(arr)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def save_overlay(
    path: str | os.PathLike, image, cam, *, alpha: float = 0.5, cmap: str = "jet", scale: int = 1
) -> Path:
    """Write :func:`overlay_heatmap` of ``image`` and ``cam`` as a PNG of the image's size,
    times ``scale`` (nearest neighbour: a 28x28 overlay is legible at scale 8)."""
    rgb = overlay_heatmap(image, cam, alpha=alpha, cmap=cmap)
    if scale != 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return save_png(path, rgb)


def new_figure(width: float, height: float):
    """A matplotlib Figure (constrained layout) on an Agg canvas, ``width`` x ``height``
    inches; no pyplot, so no global backend or figure registry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically; the format follows the suffix (png, svg, pdf)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return Path(path)


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo per-channel normalisation: float (N, C, H, W) -> uint8 (N, C, H, W)."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return ((x.float() * s + m) * 255.0).round().clamp(0, 255).to(torch.uint8)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def cam_grid_figure(
    models: Sequence[tuple[str, nn.Module]],
    images_uint8: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str] | None = None,
    *,
    labels: torch.Tensor | Sequence[int] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    cell_inches: float = 1.6,
):
    """A grid of CAM overlays: one row per image, one column per model (after the input).

    Each model's map is of the true class when ``labels`` is given, else of its predicted
    class; the cell title names the model, its prediction and the map method
    (classmap / cam / gradcam). All maps of a model come from one ``compute_cam`` call.

    Args:
        models: ``[(column_label, model), ...]``; every model takes these images at their
            size (FC-head models need their trained size).
        images_uint8: uint8 (N, C, H, W) images, C = the models' input channels.
        mean, std: per-channel normalisation the models were trained with, [0, 1] units.
        classes: class names, for titles (indices are shown without them).
        labels: optional (N,) true classes: maps are of these classes and the input
            column shows them.
        alpha, cmap: overlay weight and matplotlib colormap.
        cell_inches: size of one cell in inches.

    Returns:
        ``matplotlib.figure.Figure`` with N rows and ``1 + len(models)`` columns; save it
        with :func:`save_figure` or ``fig.savefig``.

    Example:
        >>> fig = cam_grid_figure([("gap", m1), ("fc", m2)], ds.test.images[:4],
        ...                       ds.mean, ds.std, ds.classes)  # doctest: +SKIP
        >>> save_figure(fig, "cams.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    from globalpool.analysis.images import normalize_images

    if not models:
        raise ValueError("cam_grid_figure needs at least one (label, model) pair")
    images = torch.as_tensor(images_uint8)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images_uint8 must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    n = images.shape[0]
    if labels is not None:
        labels = torch.as_tensor(labels).long().reshape(-1)
        if labels.numel() != n:
            raise ValueError(f"labels has {labels.numel()} entries for {n} images")

    def name(k: int) -> str:
        return classes[k] if classes is not None and 0 <= k < len(classes) else str(k)

    x = normalize_images(images, mean, std)
    columns = []
    for label, model in models:
        device = _model_device(model)
        logits, maps = compute_cam(
            model, x.to(device), None if labels is None else labels.to(device)
        )
        columns.append((label, cam_method(model), logits.argmax(1).cpu(), maps.cpu()))

    ncols = 1 + len(columns)
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * n + 0.4), layout="constrained")
    axes = fig.subplots(n, ncols, squeeze=False)
    for i in range(n):
        rgb = to_hwc_uint8(images[i])
        ax = axes[i][0]
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title("input" if labels is None else f"input: {name(int(labels[i]))}", fontsize=7)
        for j, (label, method, preds, maps) in enumerate(columns, start=1):
            ax = axes[i][j]
            ax.imshow(
                overlay_heatmap(rgb, maps[i], alpha=alpha, cmap=cmap), interpolation="nearest"
            )
            ax.set_title(f"{label} ({method})\npred: {name(int(preds[i]))}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
