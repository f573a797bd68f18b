"""``shapes``: a generated, offline dataset of geometric shapes with boxes and masks.

Each image holds one shape (its class) at a random position, scale, rotation and colour
on a textured, noisy background, optionally over thin line "clutter" drawn beneath it.
Rasterisation is batched: every shape is an implicit inside-test evaluated on the pixel
grid of a whole batch at once, so 10,000 images take well under a second or two.
The ground-truth mask is the shape's pixels and the box is tight around the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from globalpool.data.imageset import Dataset, ImageSet
from globalpool.data.registry import register_dataset

# Every shape, in the order classes are taken when ``num_classes`` asks for the first k.
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star", "hexagon", "ring", "crescent")
DEFAULT_CLASSES = SHAPE_CLASSES[:3]


def _regular_polygon(u: Tensor, v: Tensor, radii: tuple[float, ...]) -> Tensor:
    """Inside-test of a star-shaped polygon with equally spaced vertices.

    Vertex ``i`` lies at angle ``2*pi*i/m`` and distance ``radii[i]`` from the origin. A
    point at polar angle phi lies in the sector between vertices j and j+1; it is inside
    when its radius is at most that of the edge j -> j+1 along the same ray:
    ``r1*r2*sin(w) / (r1*sin(t) + r2*sin(w - t))``, t = phi - j*w, w = 2*pi/m.
    """
    m = len(radii)
    w = 2 * math.pi / m
    phi = torch.atan2(v, u) % (2 * math.pi)
    j = (phi / w).floor().clamp(max=m - 1).long()
    t = phi - j * w
    r = torch.tensor(radii, dtype=u.dtype)
    r1, r2 = r[j], r[(j + 1) % m]
    edge = r1 * r2 * math.sin(w) / (r1 * torch.sin(t) + r2 * torch.sin(w - t))
    return u.square() + v.square() <= edge.square()


def _convex_polygon(u: Tensor, v: Tensor, sides: int) -> Tensor:
    """Inside-test of a regular convex polygon of circumradius 1: all edge half-planes."""
    apothem = math.cos(math.pi / sides)
    inside = torch.ones(u.shape, dtype=torch.bool)
    for i in range(sides):
        a = 2 * math.pi * (i + 0.5) / sides  # outward normal of edge i
        inside &= u * math.cos(a) + v * math.sin(a) <= apothem
    return inside


def _inside(name: str, u: Tensor, v: Tensor) -> Tensor:
    """Bool inside-test of shape ``name`` in its own frame (circumradius about 1)."""
    rr = u.square() + v.square()
    if name == "circle":
        return rr <= 0.9**2
    if name == "square":
        half = math.sqrt(0.5)
        return (u.abs() <= half) & (v.abs() <= half)
    if name == "triangle":
        return _convex_polygon(u, v, 3)
    if name == "hexagon":
        return _convex_polygon(u, v, 6)
    if name == "star":
        return _regular_polygon(u, v, (1.0, 0.45) * 5)
    if name == "cross":
        au, av = u.abs(), v.abs()
        return ((au <= 0.28) & (av <= 0.95)) | ((au <= 0.95) & (av <= 0.28))
    if name == "ring":
        return (rr <= 0.95**2) & (rr >= 0.55**2)
    if name == "crescent":
        return (rr <= 0.95**2) & ((u - 0.45).square() + v.square() > 0.75**2)
    raise ValueError(f"unknown shape {name!r}; expected one of: {', '.join(SHAPE_CLASSES)}")


def _split_seed(seed: int, split: int) -> int:
    """Independent generator seeds for the train (0) and test (1) streams."""
    return int(np.random.SeedSequence([int(seed), split]).generate_state(1)[0])


def _tight_boxes(masks: Tensor) -> Tensor:
    """x0, y0, x1, y1 (pixel edges) of the True pixels of bool (N, H, W) masks."""
    h, w = masks.shape[-2:]
    cols = masks.any(dim=1)  # (N, W)
    rows = masks.any(dim=2)  # (N, H)
    x0 = cols.int().argmax(dim=1)
    x1 = w - cols.flip(1).int().argmax(dim=1)
    y0 = rows.int().argmax(dim=1)
    y1 = h - rows.flip(1).int().argmax(dim=1)
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def generate_shapes(
    n: int,
    *,
    size: int = 32,
    classes: tuple[str, ...] | list[str] = DEFAULT_CLASSES,
    seed: int = 0,
    noise: float = 0.04,
    texture: float = 0.15,
    clutter: int = 0,
    chunk: int = 1024,
) -> ImageSet:
    """Generate ``n`` shape images, balanced over ``classes`` and deterministic per seed.

    Args:
        n: number of images.
        size: height and width in pixels (at least 16).
        classes: shape names from ``SHAPE_CLASSES``; label i is ``classes[i]``.
        seed: the same seed gives the same images, labels, boxes and masks.
        noise: std of the Gaussian pixel noise, in [0, 1] units (0 for none).
        texture: amplitude of the sinusoidal background texture, in [0, 1] units.
        clutter: number of thin distractor lines per image, drawn beneath the shape
            (they are not part of the mask or box).
        chunk: images rasterised per batch (bounds memory; results do not depend on it
            only when kept at its default).

    Returns:
        ImageSet with images uint8 (n, 3, size, size), labels int64 (n,), boxes float32
        (n, 4) tight around the shape, masks bool (n, size, size).

    Example:
        >>> s = generate_shapes(30, size=32, seed=1)
        >>> s.images.shape, s.class_counts()
        (torch.Size([30, 3, 32, 32]), [10, 10, 10])
    """
    classes = _check_classes(classes)
    _check_arguments(n, size, noise, texture, clutter)
    g = torch.Generator().manual_seed(seed)
    draws = _draw(g, n, size, len(classes), texture, clutter)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.empty(n, size, size, dtype=torch.bool)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        img, mask = _render(draws, sl, size, classes, clutter)
        if noise:
            img = img + noise * torch.randn(img.shape, generator=g)
        images[sl] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        masks[sl] = mask
    return ImageSet(
        images,
        draws.labels,
        list(classes),
        boxes=_tight_boxes(masks),
        masks=masks,
        info={"source": "shapes", "seed": seed},
    )


def _check_arguments(n, size, noise, texture, clutter) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int; got {n!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16; got {size!r}")
    if noise < 0 or texture < 0 or not isinstance(clutter, int) or clutter < 0:
        raise ValueError(
            f"noise and texture must be >= 0 and clutter an int >= 0; "
            f"got noise={noise!r}, texture={texture!r}, clutter={clutter!r}"
        )


@dataclass
class _Draws:
    """The random choices of every image (N = images, L = clutter lines per image)."""

    labels: Tensor  # int64 (N,)
    radius: Tensor  # circumradius in pixels (N,)
    cx: Tensor  # centre, pixels (N,)
    cy: Tensor
    angle: Tensor  # rotation, radians (N,)
    bg_colour: Tensor  # (N, 3) in [0, 1]
    fg_colour: Tensor  # (N, 3)
    tex_amp: Tensor  # background wave: amplitude, angular frequency, direction, phase (N,)
    tex_freq: Tensor
    tex_dir: Tensor
    tex_phase: Tensor
    seg: Tensor  # clutter segments x0, y0, x1, y1 (N, L, 4)
    seg_width: Tensor  # (N, L)
    seg_colour: Tensor  # (N, L, 3)


def _draw(g: torch.Generator, n: int, size: int, k: int, texture: float, clutter: int) -> _Draws:
    """Every random choice, drawn from ``g`` in a fixed order (the images depend on it)."""
    # Exactly balanced labels (counts differ by at most one), in shuffled order.
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=g)]

    def uniform(*shape, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(*shape, generator=g)

    radius = uniform(n, low=0.2 * size, high=0.4 * size)  # circumradius in pixels
    cx = radius + 1 + uniform(n) * (size - 2 * radius - 2)
    cy = radius + 1 + uniform(n) * (size - 2 * radius - 2)
    angle = uniform(n, high=2 * math.pi)
    # Colours: the shape's brightness differs from the background's by 0.3..0.6.
    bg_level = uniform(n, low=0.15, high=0.85)
    delta = uniform(n, low=0.3, high=0.6)
    up = bg_level + delta
    down = bg_level - delta
    go_up = torch.rand(n, generator=g) < 0.5
    fg_level = torch.where((go_up & (up <= 1)) | (down < 0), up, down).clamp(0, 1)
    bg_colour = (bg_level[:, None] + uniform(n, 3, low=-0.15, high=0.15)).clamp(0, 1)
    fg_colour = (fg_level[:, None] + uniform(n, 3, low=-0.25, high=0.25)).clamp(0, 1)
    # Background texture: a plane wave of 1..4 cycles per image in a random direction.
    tex_amp = texture * uniform(n, low=0.5, high=1.0)
    tex_freq = uniform(n, low=1.0, high=4.0) * 2 * math.pi / size
    tex_dir = uniform(n, high=2 * math.pi)
    tex_phase = uniform(n, high=2 * math.pi)
    # Clutter: line segments with random end points, width and colour.
    seg = uniform(n, clutter, 4, high=float(size))
    seg_width = uniform(n, clutter, low=0.5, high=1.1)
    seg_colour = uniform(n, clutter, 3)
    return _Draws(labels, radius, cx, cy, angle, bg_colour, fg_colour, tex_amp, tex_freq,
                  tex_dir, tex_phase, seg, seg_width, seg_colour)  # fmt: skip


def _render(
    d: _Draws, sl: slice, size: int, classes: tuple[str, ...], clutter: int
) -> tuple[Tensor, Tensor]:
    """Images ``sl`` before noise: float (m, 3, S, S) in [0, 1] (not yet clamped), and
    their shape masks bool (m, S, S)."""
    m = sl.stop - sl.start
    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    yy = coords.view(1, size, 1)
    xx = coords.view(1, 1, size)
    dx = xx - d.cx[sl, None, None]
    dy = yy - d.cy[sl, None, None]
    cos, sin = torch.cos(d.angle[sl])[:, None, None], torch.sin(d.angle[sl])[:, None, None]
    r = d.radius[sl, None, None]
    u = (dx * cos + dy * sin) / r
    v = (-dx * sin + dy * cos) / r
    mask = torch.zeros(m, size, size, dtype=torch.bool)
    lab = d.labels[sl]
    for c, name in enumerate(classes):
        sel = (lab == c).nonzero().flatten()
        if len(sel):
            mask[sel] = _inside(name, u[sel], v[sel])
    # Background: colour + texture wave, then clutter lines, then the shape on top.
    proj = (
        xx * torch.cos(d.tex_dir[sl])[:, None, None] + yy * torch.sin(d.tex_dir[sl])[:, None, None]
    )
    wave = d.tex_amp[sl, None, None] * torch.sin(
        d.tex_freq[sl, None, None] * proj + d.tex_phase[sl, None, None]
    )
    img = d.bg_colour[sl, :, None, None] + wave[:, None]
    if clutter:
        on_line = _segment_masks(d.seg[sl], d.seg_width[sl], coords)  # (m, L, S, S)
        for i in range(clutter):  # later lines over earlier ones
            img = torch.where(on_line[:, i, None], d.seg_colour[sl, i, :, None, None], img)
    img = torch.where(mask[:, None], d.fg_colour[sl, :, None, None], img)
    return img, mask


def _segment_masks(seg: Tensor, width: Tensor, coords: Tensor) -> Tensor:
    """Bool (N, L, S, S): pixels within ``width`` of segments (N, L, 4) = x0, y0, x1, y1."""
    x0, y0, x1, y1 = (seg[..., i, None, None] for i in range(4))
    px = coords.view(1, 1, 1, -1)
    py = coords.view(1, 1, -1, 1)
    ex, ey = x1 - x0, y1 - y0
    t = (((px - x0) * ex + (py - y0) * ey) / (ex.square() + ey.square()).clamp_min(1e-6)).clamp(
        0, 1
    )
    dist2 = (px - x0 - t * ex).square() + (py - y0 - t * ey).square()
    return dist2 <= width[..., None, None].square()


def _check_classes(classes) -> tuple[str, ...]:
    if isinstance(classes, str):
        classes = (classes,)
    classes = tuple(classes)
    bad = [c for c in classes if c not in SHAPE_CLASSES]
    if bad or len(classes) < 1 or len(set(classes)) != len(classes):
        raise ValueError(
            f"classes must be distinct names from {', '.join(SHAPE_CLASSES)}; got {list(classes)}"
        )
    return classes


def _check_fits_in_memory(n_train, n_test, size) -> None:
    """Refuse, before generating, a set that would not fit in half of this machine's
    memory (uint8 RGB images, bool masks, and the float32 working copy of a batch of
    images while drawing)."""
    import os

    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int; got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int; got {size!r}")
    need = (n_train + n_test) * size * size * (3 + 1 + 12)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform
        return
    if need > memory // 2:
        raise ValueError(
            f"shapes with {n_train + n_test:,} images of {size}x{size} needs about "
            f"{need / 2**30:.1f} GiB, more than half of this machine's "
            f"{memory / 2**30:.0f} GiB; ask for fewer images"
        )


@register_dataset("shapes", "generated circles, squares, triangles... with boxes and masks")
def load_shapes(
    n_train: int = 5000,
    n_test: int = 1000,
    *,
    size: int = 32,
    num_classes: int = 3,
    classes: tuple[str, ...] | list[str] | None = None,
    seed: int = 0,
    noise: float = 0.04,
    texture: float = 0.15,
    clutter: int = 0,
) -> Dataset:
    """The ``shapes`` dataset: independent train and test streams from one seed.

    Args:
        n_train, n_test: images per split.
        size: image height and width (32 by default, 64 for finer maps).
        num_classes: take the first k of ``SHAPE_CLASSES`` (3: circle, square, triangle);
            ignored when ``classes`` is given.
        classes: explicit shape names.
        seed, noise, texture, clutter: see :func:`generate_shapes`.

    Returns:
        Dataset named "shapes"; images uint8 (N, 3, size, size) with boxes and masks.
    """
    if classes is None:
        if not isinstance(num_classes, int) or not 1 <= num_classes <= len(SHAPE_CLASSES):
            raise ValueError(
                f"num_classes must be an int in [1, {len(SHAPE_CLASSES)}]; got {num_classes!r}"
            )
        classes = SHAPE_CLASSES[:num_classes]
    opts = dict(size=size, classes=classes, noise=noise, texture=texture, clutter=clutter)
    _check_fits_in_memory(n_train, n_test, size)
    train = generate_shapes(n_train, seed=_split_seed(seed, 0), **opts)
    test = generate_shapes(n_test, seed=_split_seed(seed, 1), **opts)
    info = {"seed": seed, **opts, "classes": list(train.classes)}
    return Dataset.from_splits("shapes", train, test, info)
