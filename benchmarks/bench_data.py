"""Data benchmark: loader throughput next to the training step, and CIFAR-10 load times.

Measures, in one run on one machine:
  1. the first load of the CIFAR-10 JPEG copy (decode 60,000 images, write the cache)
     and the cached second load (median of --repeats);
  2. the Loader's throughput (images/s) with crop (reflect pad 4) + flip at --batch-size
     on the CIFAR training images (or random CIFAR-sized images with --skip-cifar);
  3. the training throughput (forward + backward + SGD step) of the default model
     ``create_model("fastnet", 10)`` at the same batch size, same device;
and reports loader / training (target: >= 20); also times generating 10,000 ``shapes``.

Usage:
    .venv/bin/python benchmarks/bench_data.py                 # everything
    .venv/bin/python benchmarks/bench_data.py --skip-cifar    # throughput only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from globalpool.data import Augment, ImageSet, Loader, channel_stats, load_dataset

TARGET_RATIO = 20.0
DEFAULT_CIFAR = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpg.tar.gz"
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_cifar(path: Path, repeats: int) -> tuple[dict, ImageSet, tuple, tuple]:
    with tempfile.TemporaryDirectory(prefix="gp-bench-cache-") as cache:
        t0 = time.perf_counter()
        ds = load_dataset("cifar10", path=path, cache_dir=cache)
        first = time.perf_counter() - t0
        assert ds.train.info["cache_hit"] is False
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            again = load_dataset("cifar10", path=path, cache_dir=cache)
            seconds.append(time.perf_counter() - t0)
            assert again.train.info["cache_hit"] is True
            assert torch.equal(again.train.images, ds.train.images)
    result = {
        "cifar_images": len(ds.train) + len(ds.test),
        "cifar_first_load_s": round(first, 2),
        "cifar_cached_load_s": round(statistics.median(seconds), 3),
        "cifar_cached_load_all_s": [round(s, 3) for s in seconds],
    }
    return result, ds.train, ds.mean, ds.std


def loader_throughput(train: ImageSet, mean, std, batch: int, device, batches: int) -> float:
    loader = Loader(
        train, batch, shuffle=True, augment=Augment(crop_padding=4, flip=True),
        mean=mean, std=std, device=device, seed=0, drop_last=True,
    )  # fmt: skip
    n_done, epoch = 0, 0
    loader.set_epoch(epoch)
    it = iter(loader)
    for _ in range(3):  # warm-up
        next(it)
    _sync(device)
    t0 = time.perf_counter()
    checksum = 0.0
    while n_done < batches * batch:
        try:
            x, _ = next(it)
        except StopIteration:
            epoch += 1
            loader.set_epoch(epoch)
            it = iter(loader)
            continue
        n_done += len(x)
    checksum += float(x[0, 0, 0, 0])  # keep the last batch live
    _sync(device)
    return n_done / (time.perf_counter() - t0)


def train_throughput(batch: int, device, steps: int) -> float:
    from globalpool.models import create_model

    model = create_model("fastnet", 10).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--loader-batches", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    parser.add_argument("--skip-cifar", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="cached loads to time")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--check", action="store_true", help="exit 1 below the target ratio")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    result: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
    }
    if args.skip_cifar:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g)
        train = ImageSet(images, torch.randint(0, 10, (50_000,), generator=g), list("abcdefghij"))
        mean, std = channel_stats(images)
        result["data"] = "random uint8, 50,000 x 3 x 32 x 32"
    else:
        if not args.cifar.exists():
            parser.error(f"{args.cifar} not found; pass --cifar PATH or --skip-cifar")
        timing, train, mean, std = time_cifar(args.cifar.resolve(), args.repeats)
        result.update(timing)
        result["data"] = f"CIFAR-10 JPEG copy, train split ({len(train)} images)"

    from globalpool.data.shapes import generate_shapes

    t0 = time.perf_counter()
    generate_shapes(10_000, size=32, seed=0)
    result["shapes_10k_32px_s"] = round(time.perf_counter() - t0, 2)

    loader_ips = loader_throughput(train, mean, std, args.batch_size, device, args.loader_batches)
    train_ips = train_throughput(args.batch_size, device, args.train_steps)
    ratio = loader_ips / train_ips
    result.update(
        loader_images_per_s=round(loader_ips),
        train_images_per_s=round(train_ips, 1),
        loader_over_train=round(ratio, 1),
        target_ratio=TARGET_RATIO,
        meets_target=ratio >= TARGET_RATIO,
    )
    print(json.dumps(result, indent=2))
    return 1 if args.check and ratio < TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
