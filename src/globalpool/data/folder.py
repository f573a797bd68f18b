"""``folder``: images in class folders, from a directory or straight from an archive.

Layouts (``<root>`` may also be a .tar, .tar.gz, .tgz or .zip; one wrapping top folder
in an archive is skipped)::

    <root>/<class>/<image>                       one pool, split by ``test_fraction``
    <root>/train/<class>/<image>  + <root>/test/<class>/<image>     (or val/)

PNG, JPEG, BMP and WebP are decoded with Pillow; grey, RGBA and palette images are
converted to RGB (or all to grey with ``grey=True``) and resized to ``size``. JPEGs are
decoded at a reduced scale where that still covers ``size`` (Pillow's draft mode), and
decoding runs in ``workers`` processes. The decoded tensors are cached on disk, keyed by
the absolute path, options, and the sizes and modification times of the files, so a
second load reads one file.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from globalpool.data.archive import is_archive, iter_archive
from globalpool.data.cache import cached_arrays, entries_fingerprint, file_fingerprint
from globalpool.data.imageset import Dataset, ImageSet, channel_stats
from globalpool.data.registry import register_dataset
from globalpool.data.split import stratified_split_index

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TRAIN_NAMES = ("train",)
TEST_NAMES = ("test", "val", "valid", "validation")
_MAX_NAMED = 5  # files named in a warning or error message


def _is_image_name(name: str) -> bool:
    parts = name.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _size_pair(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return (size, size)
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and s > 0 for s in size)
    ):
        return (int(size[0]), int(size[1]))
    raise ValueError(f"size must be a positive int or (height, width); got {size!r}")


# --------------------------------------------------------------------------- decoding


def decode_image(source, size: tuple[int, int] | None, grey: bool) -> np.ndarray:
    """Decode one image (bytes or a path) to uint8 (H, W, C), C = 1 if grey else 3."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        if size is not None and img.format == "JPEG":
            # libjpeg decodes at 1/2, 1/4, 1/8 scale directly when that still covers size.
            img.draft(None, (size[1], size[0]))
        img.load()
        if img.mode.startswith("I;16"):
            img = Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8))
        elif img.mode in ("I", "F"):
            img = Image.fromarray(np.asarray(img).clip(0, 255).astype(np.uint8))
        if img.mode == "P":
            img = img.convert("RGBA")  # palette transparency resolved before dropping alpha
        img = img.convert("L" if grey else "RGB")
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def read_image(path: str | os.PathLike, in_chans: int = 3) -> torch.Tensor:
    """Read one image file as uint8 (C, H, W): RGB for ``in_chans`` 3, grey for 1.

    The same decoder as the folder datasets (grey, RGBA, palette and 16-bit converted).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an image Pillow can read, or ``in_chans`` not 1 or 3.

    Example:
        >>> read_image("cat.png").shape  # doctest: +SKIP
        torch.Size([3, 224, 300])
    """
    from PIL import Image, UnidentifiedImageError

    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 (grey) or 3 (RGB); got {in_chans}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {str(path)!r}")
    try:
        arr = decode_image(path, None, grey=in_chans == 1)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {str(path)!r} as an image: {err}") from None
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{str(path)!r} is too large to decode safely ({err}); resize it first"
        ) from None
    # (H, W, C) -> (C, H, W) in one copy; the copy is writable, unlike PIL's buffer view.
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1)))


def _decode_chunk(args) -> tuple[np.ndarray, list[tuple[int, str]], list[tuple[int, tuple]]]:
    """Decode a chunk: (stacked images, unreadable [(i, error)], wrong-size [(i, (h, w))])."""
    sources, size, grey, resize = args
    out = np.zeros((len(sources), size[0], size[1], 1 if grey else 3), dtype=np.uint8)
    failed, wrong_size = [], []
    for i, src in enumerate(sources):
        try:
            arr = decode_image(src, size if resize else None, grey)
        except Exception as err:  # any decoder failure marks this one file unreadable
            failed.append((i, f"{type(err).__name__}: {err}"))
            continue
        if arr.shape[:2] != size:
            wrong_size.append((i, arr.shape[:2]))
            continue
        out[i] = arr
    return out, failed, wrong_size


def _decode_all(sources: list, size, grey: bool, workers: int, names: list[str], origin: str):
    """Decode every source; returns (N, H, W, C) uint8, unreadable [(i, error)], size."""
    resize = size is not None
    if size is None:
        # No size given: every image must share the size of the first readable one.
        for src in sources:
            try:
                size = decode_image(src, None, grey).shape[:2]
                break
            except Exception:
                continue
        else:
            size = (1, 1)
    chunk = 512
    jobs = [(sources[i : i + chunk], size, grey, resize) for i in range(0, len(sources), chunk)]
    use_pool = workers > 1 and len(sources) >= 2000 and hasattr(os, "fork")
    if use_pool:
        import multiprocessing

        # fork: the children already hold Pillow and numpy; they never touch torch.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_decode_chunk, jobs, chunksize=1)
    else:
        results = [_decode_chunk(job) for job in jobs]
    images = np.concatenate([r[0] for r in results]) if results else np.zeros((0, *size, 3))
    failed, wrong = [], []
    for j, (_, f, w) in enumerate(results):
        failed += [(j * chunk + i, e) for i, e in f]
        wrong += [(j * chunk + i, s) for i, s in w]
    if wrong:
        listed = ", ".join(f"{names[i]} ({s[1]}x{s[0]})" for i, s in wrong[:_MAX_NAMED])
        raise ValueError(
            f"{origin}: images differ in size: {len(wrong)} are not {size[1]}x{size[0]} "
            f"(e.g. {listed}); pass size= to resize them all"
        )
    return images, failed, size


# --------------------------------------------------------------------------- layout


def _strip_wrapper(names: list[str], dirs: list[str]) -> tuple[list[str], list[str], str]:
    """Drop one top folder that wraps the whole layout (common in archives)."""
    firsts = {n.split("/", 1)[0] for n in names}
    if len(firsts) != 1 or not all("/" in n for n in names):
        return names, dirs, ""
    top = firsts.pop()
    if top in TRAIN_NAMES + TEST_NAMES:
        return names, dirs, ""
    rest = [n.split("/", 1)[1] for n in names]
    rest_firsts = {n.split("/", 1)[0] for n in rest}
    nested = all("/" in n for n in rest)
    if not nested or (len(rest_firsts) < 2 and not rest_firsts <= set(TRAIN_NAMES + TEST_NAMES)):
        return names, dirs, ""
    sub_dirs = [d.split("/", 1)[1] for d in dirs if "/" in d and d.split("/", 1)[0] == top]
    return rest, sub_dirs, top + "/"


def parse_layout(
    names: list[str], dirs: list[str], origin: str
) -> tuple[list[str], dict[str, list[tuple[int, str]]]]:
    """Classes and, per split ("all" or "train"/"test"), the (file index, class) pairs.

    Args:
        names: "/"-separated relative names of the image files.
        dirs: relative names of every folder (to find empty class folders).
        origin: the folder or archive, for messages.
    """
    if not names:
        raise ValueError(
            f"no images found in {origin}: expected {origin}/<class>/<image> with extensions "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    names, dirs, prefix = _strip_wrapper(names, dirs)
    firsts = {n.split("/", 1)[0] for n in names}
    split_names = set(TRAIN_NAMES + TEST_NAMES)
    if "train" in firsts and firsts <= split_names:
        test_name = next((t for t in TEST_NAMES if t in firsts), None)
        roots = {"train": "train", **({"test": test_name} if test_name else {})}
    else:
        roots = {"all": ""}
    groups: dict[str, list[tuple[int, str]]] = {split: [] for split in roots}
    split_of = {v: k for k, v in roots.items()}
    for i, name in enumerate(names):
        parts = name.split("/")
        if roots.keys() == {"all"}:
            split, rest = "all", parts
        else:
            split, rest = split_of.get(parts[0]), parts[1:]
            if split is None:  # e.g. a val/ folder beside test/: not used
                continue
        if len(rest) < 2:
            where = f"{origin}/{prefix}{'/'.join(parts[:-1])}".rstrip("/")
            raise ValueError(
                f"image {prefix}{name} lies directly in {where}; expected "
                f"{where}/<class>/<image> (one folder per class)"
            )
        groups[split].append((i, rest[0]))
    first_split = "train" if "train" in groups else "all"
    classes = sorted({c for _, c in groups[first_split]})
    # A class folder without images is almost always a mistake worth naming.
    for split, root in roots.items():
        depth = 1 if root == "" else 2
        have = {c for _, c in groups[split]}
        for d in dirs:
            parts = d.split("/")
            in_split = root == "" or parts[0] == root
            hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
            if len(parts) == depth and in_split and not hidden and parts[-1] not in have:
                raise ValueError(f"class folder {origin}/{prefix}{d} has no images")
    if "test" in groups:
        extra = sorted({c for _, c in groups["test"]} - set(classes))
        if extra:
            raise ValueError(
                f"{origin}: test classes {extra} have no training folder "
                f"(training classes: {classes})"
            )
    return classes, groups


# --------------------------------------------------------------------------- loading


def _scan_directory(root: Path) -> tuple[list[str], list[str], list[tuple[str, int, int]]]:
    names, dirs, stats = [], [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        dirs += [rel + d for d in dirnames]
        for f in sorted(filenames):
            name = rel + f
            if not _is_image_name(name):
                continue
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    f"{root}: the file name {os.fsencode(name)!r} is not valid UTF-8; "
                    "rename it (class and file names must be text)"
                ) from None
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError as err:  # a broken or self-referencing symbolic link
                raise ValueError(
                    f"cannot read {os.path.join(dirpath, f)}: {err.strerror or err}"
                ) from None
            names.append(name)
            stats.append((name, st.st_size, st.st_mtime_ns))
    return names, dirs, stats


def _decode_folder(path: Path, size, grey: bool, workers: int, names=None, dirs=None):
    """Decode a folder or archive into arrays + metadata for the cache."""
    origin = str(path)
    if names is None:  # an archive: read every member into memory once
        names, dirs, sources = [], [], []
        for name, data in iter_archive(path, with_dirs=True):
            if data is None:
                dirs.append(name)
            elif _is_image_name(name):
                names.append(name)
                sources.append(data)
        # Implied folders of files count as folders too.
        dirs = sorted(set(dirs) | {n.rsplit("/", 1)[0] for n in names if "/" in n})
    else:
        sources = [str(path / n) for n in names]
    classes, groups = parse_layout(names, dirs, origin)
    order = [(i, c, split) for split, items in groups.items() for i, c in items]
    chosen = [i for i, _, _ in order]
    images, failed, size = _decode_all(
        [sources[i] for i in chosen], size, grey, workers, [names[i] for i in chosen], origin
    )
    class_index = {c: k for k, c in enumerate(classes)}
    labels = np.array([class_index[c] for _, c, _ in order], dtype=np.int64)
    split = np.array([1 if s == "test" else 0 for _, _, s in order], dtype=np.uint8)
    keep = np.ones(len(order), dtype=bool)
    keep[[i for i, _ in failed]] = False
    skipped = [[names[chosen[i]], err] for i, err in failed]
    arrays = {
        "images": np.ascontiguousarray(images[keep].transpose(0, 3, 1, 2)),
        "labels": labels[keep],
        "split": split[keep],
    }
    train_images = arrays["images"][arrays["split"] == 0]
    meta = {
        # Stored so that a cached load skips a pass over all pixels.
        "train_stats": list(channel_stats(torch.from_numpy(train_images)))
        if len(train_images)
        else None,
        "classes": classes,
        "skipped": skipped,
        "has_test": "test" in groups,
        "total": len(order),
    }
    return arrays, meta


def read_image_folder(
    path: str | os.PathLike,
    *,
    size: int | tuple[int, int] | None = None,
    grey: bool = False,
    strict: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 2,
) -> tuple[ImageSet, ImageSet | None, dict]:
    """Decode (or read from the cache) a class-folder tree or archive.

    Returns:
        ``(train, test, info)``: ImageSets with uint8 (N, C, H, W) images; ``test`` is
        None without a train/test layout. ``info`` has "cache_hit" and "skipped".
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"image folder or archive {path} does not exist")
    size = _size_pair(size)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    names = dirs = None
    if path.is_dir():
        names, dirs, stats = _scan_directory(path)
        fingerprint = entries_fingerprint(stats)
    elif is_archive(path):
        fingerprint = file_fingerprint(path)
    else:
        raise ValueError(f"{path} is neither a folder nor an archive (.tar, .tar.gz, .tgz, .zip)")
    options = {"size": size and list(size), "grey": bool(grey)}
    arrays, meta, hit = cached_arrays(
        "folder",
        path,
        options,
        fingerprint,
        lambda: _decode_folder(path, size, grey, workers, names, dirs),
        cache_dir=cache_dir,
        enabled=cache,
    )
    skipped = meta.get("skipped", [])
    if skipped:
        if strict:
            name, err = skipped[0]
            raise ValueError(f"cannot read image {name} in {path}: {err}")
        listed = ", ".join(n for n, _ in skipped[:_MAX_NAMED])
        more = ", ..." if len(skipped) > _MAX_NAMED else ""
        warnings.warn(
            f"{path}: skipped {len(skipped)} unreadable image(s) of {meta['total']}: "
            f"{listed}{more}",
            stacklevel=3,
        )
    images = torch.from_numpy(arrays["images"])
    labels = torch.from_numpy(arrays["labels"].astype(np.int64))
    # Train rows come first, then test rows: the splits are views, not copies.
    n_train = int((arrays["split"] == 0).sum())
    if not (arrays["split"][n_train:] == 1).all():
        raise ValueError(f"cache entry for {path} is inconsistent; delete it and load again")
    classes = list(meta["classes"])
    info = {"source": str(path), "cache_hit": hit, "skipped": [n for n, _ in skipped]}
    if meta.get("train_stats") and meta["has_test"]:
        info["train_stats"] = tuple(tuple(v) for v in meta["train_stats"])
    train = ImageSet(images[:n_train], labels[:n_train], classes, info=dict(info))
    test = ImageSet(images[n_train:], labels[n_train:], classes) if meta["has_test"] else None
    return train, test, info


@register_dataset("folder", "images in <root>/<class>/ (or train/ + test/) folders or archives")
def load_folder(
    path: str | os.PathLike,
    *,
    size: int | tuple[int, int] | None = None,
    grey: bool = False,
    strict: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 2,
    name: str | None = None,
) -> Dataset:
    """Load an image-folder tree or archive as a :class:`Dataset`.

    Args:
        path: a folder or a .tar/.tar.gz/.tgz/.zip archive in one of the layouts above.
        size: resize every image to this (int or (H, W)); None keeps the size, which
            must then be the same for all images.
        grey: decode to 1 grey channel instead of RGB.
        strict: raise on the first unreadable image instead of skipping it with a warning.
        test_fraction: without train/ and test/ folders, this stratified, seeded fraction
            of each class becomes the test split.
        seed: seed of that split.
        cache: read/write decoded tensors in ``cache_dir`` (default ``$GLOBALPOOL_CACHE``
            or ``~/.cache/globalpool``).
        workers: decoding processes (large folders only).
        name: the dataset's name (default: the folder or archive name).

    Returns:
        Dataset with uint8 (N, C, H, W) images; classes are the sorted folder names.

    Example:
        >>> ds = load_folder("../shared/data/cifar10-jpg.tar.gz")  # doctest: +SKIP
        >>> ds.train.images.shape  # doctest: +SKIP
        torch.Size([50000, 3, 32, 32])
    """
    train, test, info = read_image_folder(
        path,
        size=size,
        grey=grey,
        strict=strict,
        cache=cache,
        cache_dir=cache_dir,
        workers=workers,
    )
    stats = info.pop("train_stats", None)
    if test is None:
        keep, held = stratified_split_index(
            train.labels, test_fraction, seed, num_classes=len(train.classes)
        )
        train, test = train.subset(keep), train.subset(held)
        info = {**info, "test_fraction": test_fraction, "seed": seed}
    if name is None:
        base = Path(path).name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz"):
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
                break
        name = base
    return Dataset.from_splits(name, train, test, info, stats=stats)
