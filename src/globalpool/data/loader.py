"""The in-memory batch loader: shuffled, augmented, normalised batches on the device."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from globalpool.data.augment import Augment
from globalpool.data.imageset import ImageSet


def _stats_tensor(values, channels: int, what: str, device) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float32, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise ValueError(f"{what} needs {channels} values (one per channel); got {t.numel()}")
    if what == "std" and (t <= 0).any():
        raise ValueError(f"std must be positive; got {t.tolist()}")
    if (t.abs() > 1.5).any():
        raise ValueError(f"{what} is in [0, 1] units (e.g. 0.49, not 125); got {t.tolist()}")
    return t


def normalize(
    images: Tensor, mean: Sequence[float] | Tensor | None, std: Sequence[float] | Tensor | None
) -> Tensor:
    """uint8 images to float32 ``(x / 255 - mean) / std``, per channel.

    Args:
        images: uint8 (..., C, H, W).
        mean, std: C values each, in [0, 1] units (as in ``Dataset.mean``/``std``);
            None for both gives plain ``x / 255``.

    Returns:
        float32 of the same shape (and memory layout).

    Example:
        >>> import torch
        >>> x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
        >>> normalize(x, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))[0, :, 0, 0]
        tensor([1., 1., 1.])
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images; got {images.dtype}")
    x = images.float()
    if mean is None and std is None:
        return x.mul_(1 / 255)
    c = images.shape[-3]
    m = _stats_tensor(mean if mean is not None else 0.0, c, "mean", images.device)
    s = _stats_tensor(std if std is not None else 1.0, c, "std", images.device)
    scale = (1 / (255 * s)).view(c, 1, 1)
    shift = (-m / s).view(c, 1, 1)
    return x.mul_(scale).add_(shift)


def _epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed that depends only on (seed, epoch): epochs replay exactly."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


_FLIP_STREAM = 0x666C6970  # "flip": the alternate flip's per-image draw, apart from epochs'


class Loader:
    """Batches of augmented, normalised images drawn from an :class:`ImageSet` in memory.

    The uint8 images go to ``device`` once; every batch is then made there by batched
    tensor ops (index, crop/flip gather, float conversion, normalisation, cutout).
    The order and augmentation of an epoch depend only on ``(seed, epoch)``: call
    :meth:`set_epoch` before each epoch (as with ``DistributedSampler``), and a resumed
    run replays the same batches.

    Distributed: ``batch_size`` is per rank. The epoch's order (padded, unless
    ``drop_last``, by repeating its first samples up to a multiple of ``world_size``) is
    split into global batches of ``batch_size * world_size``; rank r takes rows
    ``r::world_size`` of each, so all ranks together see exactly the single-process
    batches of ``batch_size * world_size``, and every rank yields ``len(loader)`` batches.

    Args:
        imageset: the images (uint8 (N, C, H, W)) and labels.
        batch_size: images per batch (per rank).
        shuffle: a new seeded permutation every epoch; False keeps the stored order.
        augment: an :class:`Augment` (training) or None (evaluation).
        mean, std: per-channel normalisation in [0, 1] units (``Dataset.mean``/``std``);
            None gives x / 255.
        device: where batches are made.
        seed: base seed of shuffling and augmentation.
        drop_last: drop the final incomplete batch; otherwise it is yielded smaller.
        channels_last: return x in channels-last memory format (same shape).
        rank, world_size: this process's shard, see above.

    Yields:
        ``(x, y)``: float32 (B, C, H, W) normalised images and int64 (B,) labels on
        ``device``.

    Example:
        >>> from globalpool.data import Augment, load_dataset
        >>> ds = load_dataset("shapes", n_train=100, n_test=10)
        >>> loader = Loader(ds.train, 32, shuffle=True, augment=Augment(),
        ...                 mean=ds.mean, std=ds.std, seed=0)
        >>> loader.set_epoch(0)
        >>> x, y = next(iter(loader))
        >>> x.shape, y.shape, len(loader)
        (torch.Size([32, 3, 32, 32]), torch.Size([32]), 4)
    """

    def __init__(
        self,
        imageset: ImageSet,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(imageset, ImageSet):
            raise TypeError(f"Loader needs an ImageSet; got {type(imageset).__name__}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be an int >= 1; got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, {world_size}); got {rank!r}")
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"augment must be an Augment or None; got {type(augment).__name__}")
        self.device = torch.device(device)
        self.images = imageset.images.to(self.device)
        self.labels = imageset.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.augment = augment
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.channels_last = bool(channels_last)
        self.rank, self.world_size = rank, world_size
        c = self.images.shape[1]
        if mean is None and std is None:
            self._scale = torch.full((c, 1, 1), 1 / 255, device=self.device)
            self._shift = torch.zeros(c, 1, 1, device=self.device)
        else:
            m = _stats_tensor(mean if mean is not None else 0.0, c, "mean", self.device)
            s = _stats_tensor(std if std is not None else 1.0, c, "std", self.device)
            self._scale = (1 / (255 * s)).view(c, 1, 1)
            self._shift = (-m / s).view(c, 1, 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next iteration uses."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0; got {epoch!r}")
        self.epoch = epoch

    def _global_length(self) -> int:
        """Length of the epoch's order across all ranks, after padding or dropping."""
        n, g = len(self.images), self.batch_size * self.world_size
        if self.drop_last:
            return (n // g) * g
        return math.ceil(n / self.world_size) * self.world_size

    @property
    def num_samples(self) -> int:
        """Samples this rank yields per epoch."""
        return self._global_length() // self.world_size

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def epoch_plan(self, epoch: int | None = None) -> tuple[Tensor, dict | None]:
        """This rank's sample order (int64 (num_samples,)) and augmentation parameters."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.images)
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        params = None
        if self.augment is not None:
            h, w = self.images.shape[-2:]
            # One draw per position of the unpadded order: sharding does not change them.
            params = self.augment.sample(n, h, w, g)
            if self.augment.alternate_flip:  # Augment checks that flip is on
                # Per image, not per position: image i alternates whatever its position.
                flips = self.augment.epoch_flips(self._first_half(), epoch)
                params["flip"] = flips[order]
        total = self._global_length()
        # Pad (wrapping around, parameters too) or drop to ``total``, then take the shard.
        positions = torch.arange(total) % max(n, 1)
        order = order[positions][self.rank :: self.world_size]
        if params is not None:
            params = {
                k: v[positions][self.rank :: self.world_size].to(self.device)
                for k, v in params.items()
            }
        return order.to(self.device), params

    def _first_half(self) -> Tensor:
        """Bool (N,): the images ``alternate_flip`` mirrors in even epochs (fixed by seed)."""
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, _FLIP_STREAM))
        return torch.rand(len(self.images), generator=g) < 0.5

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order, params = self.epoch_plan()
        h, w = self.images.shape[-2:]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            if self.augment is not None:
                batch_params = {k: v[start : start + self.batch_size] for k, v in params.items()}
                x = self.augment.apply(self.images, batch_params, idx)
            else:
                x = self.images[idx]
            x = x.float().mul_(self._scale).add_(self._shift)
            if self.augment is not None:
                keep = self.augment.cutout_mask(h, w, batch_params)
                if keep is not None:
                    x = x.mul_(keep)
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            yield x.contiguous(memory_format=fmt), self.labels[idx]
