"""What a training run says on the terminal: the plan line, one line per epoch, warnings.

Rank 0 only, and nothing with ``quiet`` (warnings about a resumed run's settings are
printed by :mod:`globalpool.train.resume` even then).
"""

from __future__ import annotations

import sys
import time

import torch


class RunLog:
    """Epoch lines on stdout (rank 0, unless quiet); through tqdm when bars are shown."""

    def __init__(self, enabled: bool, bars: bool) -> None:
        self.enabled, self.bars = enabled, bars

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bars:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)
        else:
            print(message, flush=True)


def device_name(device: torch.device) -> str:
    """``cuda (<GPU name>)`` or ``cpu (<n> threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def plan_line(config, data, model, train_set, val_set, steps, amp, device) -> str:
    """The startup line: what will be trained, on what, how long, how."""
    if not config.augment:
        augment = "none"
    else:
        parts = [f"crop (padding {config.crop_padding})"] if config.crop_padding else []
        flip = "alternating horizontal flip" if config.alternate_flip else "horizontal flip"
        parts += [flip] if config.flip else []
        parts += [f"cutout {config.cutout}"] if config.cutout else []
        augment = ", ".join(parts) or "none"
    precision = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[amp]
    if config.amp == "auto":
        precision += " (auto: " + ("native bf16" if amp == "bf16" else "no native bf16") + ")"
    return (
        f"train {config.model} ({model.head_kind} head, pool {model.pool_name}) on "
        f"{config.dataset}: {len(train_set):,} train / {len(val_set):,} val / "
        f"{len(data.test):,} test images; {config.epochs} epoch"
        f"{'s' if config.epochs != 1 else ''} x {steps} steps of "
        f"{config.batch_size}; augmentation: {augment}; {precision}; {device_name(device)}"
    )


def flip_warning(config, data) -> str | None:
    """A warning when random flips are on for a dataset whose labels a flip changes."""
    if config.augment and config.flip and data.info.get("flip_preserves_label") is False:
        return (
            f"warning: random horizontal flips are on, but {config.dataset} declares that a "
            "flip changes what an image shows (a mirrored digit is another symbol); "
            "train with --no-flip"
        )
    return None


def epoch_line(row: dict, epochs: int, first_epoch: int, epoch_start: float) -> str:
    """One finished epoch: losses, accuracies, learning rate, speed, the clock so far."""
    val = (
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  gap {row['gap']:+.4f}"
        if row["val_acc"] is not None
        else "no val"
    )
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.4f}  {val}  lr {row['lr']:.4g}  "
        f"{row['images_per_s']:.0f} img/s  {row['epoch_time_s']:.1f}s"
        f"  clock {row['train_clock_s']:.1f}s"
        + test_note(row)
        + estimate_note(row["epoch"], first_epoch, epochs, epoch_start)
    )


def estimate_note(epoch: int, first: int, last: int, epoch_start: float) -> str:
    """After the first epoch of this process: the time the remaining epochs should take."""
    left = last - epoch
    if epoch != first or left == 0:
        return ""
    remaining = (time.perf_counter() - epoch_start) * left
    return f"  (about {remaining / 60:.1f} min more for {left} epoch{'s' if left != 1 else ''})"


def test_note(row: dict) -> str:
    """The epoch's test accuracy (with ``test_curve``), else nothing."""
    return f"  test acc {row['test_acc']:.4f}" if row.get("test_acc") is not None else ""


def diverged_message(epoch: int, batch: int, steps: int, lr: float, ckpt_dir: str) -> str:
    """Why the run stopped at a NaN/inf loss, and what it kept."""
    kept = (
        f"the last good checkpoint is {ckpt_dir}/last.safetensors (epoch {epoch - 1})"
        if epoch > 1
        else "no checkpoint was saved (it diverged in the first epoch)"
    )
    return (
        f"training diverged: the loss became NaN or infinite in epoch {epoch} "
        f"(batch {batch + 1} of {steps}, lr {lr:.4g}); stopped without "
        f"saving this epoch; {kept}. Lower --lr or set --grad-clip."
    )
