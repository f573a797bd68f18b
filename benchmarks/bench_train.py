"""Training-loop overhead: ``globalpool train``'s loop against a bare PyTorch loop.

Both loops train the same architecture (same initial weights) on the same batches from
the same in-memory ``Loader`` (same seed, augmentation and epoch, so identical tensors):

- bare: ``for x, y in loader: loss = cross_entropy(model(x), y); zero_grad; backward;
  step`` and nothing else;
- project: :func:`globalpool.train.loop.train_one_epoch`, the function ``train()`` runs
  each epoch (per-step learning-rate schedule, NaN check, on-device loss/accuracy sums).

Epochs alternate bare / project (and which of the two goes first) so that drift in
machine load hits both alike; the first epoch of each is a warm-up and is not counted.
Printed: the median images/s of the timed epochs and their ratio, the median of the
per-epoch ratios (each pair ran back to back, under the same load) and the ratio of the
best epochs; on the CPU also images per CPU-second of this process, which other
processes on a shared machine barely disturb. Then one full ``train()`` run on the same
data reports its own images/s (median over epochs but the first) as a third figure;
like the others it times the training pass only (evaluation and checkpoints come after).

Target: the project's loop within 5% of the bare loop (ratio >= 0.95).

Usage:
    python benchmarks/bench_train.py                      # fastnet on shapes, CPU/GPU
    python benchmarks/bench_train.py --model smallgap --epochs 6 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F


def bare_epoch(model, loader, optimizer) -> int:
    """One epoch of the plainest loop; returns the number of images."""
    model.train()
    count = 0
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        count += y.shape[0]
    return count


def timed(fn, device) -> tuple[int, float, float]:
    """``(images, wall seconds, CPU seconds of this process)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    images = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--head", default=None)
    parser.add_argument("--pool", default=None)
    parser.add_argument("--n-train", type=int, default=1280, help="shapes training images")
    parser.add_argument("--size", type=int, default=32, help="shapes image size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per loop")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from globalpool.data import Augment, Loader, load_dataset, train_val_split
    from globalpool.models import create_model
    from globalpool.train import TrainConfig, train
    from globalpool.train.distributed import resolve_device
    from globalpool.train.loop import train_one_epoch
    from globalpool.train.metrics import read_metrics
    from globalpool.train.optim import build_optimizer
    from globalpool.train.schedule import lr_at

    device = resolve_device(args.device)
    dataset_kwargs = {"n_train": args.n_train, "n_test": 256, "size": args.size}
    config = TrainConfig(
        model=args.model, head=args.head, pool=args.pool, dataset="shapes",
        dataset_kwargs=dataset_kwargs, epochs=args.epochs + 1, batch_size=args.batch_size,
        device=device.type, quiet=True, tensorboard=False, weight_decay=5e-4,
    )  # fmt: skip

    data = load_dataset("shapes", **dataset_kwargs)
    train_set, _ = train_val_split(data.train, config.val_fraction, config.seed)
    in_chans, height, width = (int(s) for s in train_set.images.shape[1:])
    torch.manual_seed(0)
    base = create_model(
        args.model, len(data.classes), head=args.head, pool=args.pool, in_chans=in_chans,
        input_size=(height, width),
    ).to(device)  # fmt: skip
    bare_model, project_model = copy.deepcopy(base), copy.deepcopy(base)
    loader = Loader(
        train_set, args.batch_size, shuffle=True, augment=Augment(), mean=data.mean,
        std=data.std, device=device, seed=0, drop_last=True,
    )  # fmt: skip
    bare_opt = torch.optim.SGD(
        bare_model.parameters(), lr=config.lr, momentum=config.momentum,
        nesterov=config.nesterov, weight_decay=config.weight_decay,
    )  # fmt: skip
    project_opt = build_optimizer(project_model, config)
    total = (args.epochs + 1) * len(loader)
    check_every = 1 if device.type == "cpu" else 50

    def lr_for_step(step: int) -> float:
        return lr_at(step, total, lr=config.lr, warmup_steps=len(loader))

    criterion = torch.nn.CrossEntropyLoss()

    def project_epoch(epoch: int) -> int:
        totals = train_one_epoch(
            project_model, loader, project_opt, criterion, lr_for_step=lr_for_step,
            first_step=(epoch - 1) * len(loader), check_every=check_every,
        )  # fmt: skip
        return int(totals.count)

    wall_ips: dict[str, list[float]] = {"bare": [], "project": []}
    cpu_ips: dict[str, list[float]] = {"bare": [], "project": []}
    for epoch in range(1, args.epochs + 2):
        # Alternate which loop goes first, so neither always follows the other.
        for name in ("bare", "project") if epoch % 2 else ("project", "bare"):
            loader.set_epoch(epoch)
            fn = (
                (lambda: bare_epoch(bare_model, loader, bare_opt))
                if name == "bare"
                else (lambda e=epoch: project_epoch(e))
            )
            images, wall, cpu = timed(fn, device)
            if epoch > 1:  # epoch 1 warms up both
                wall_ips[name].append(images / wall)
                cpu_ips[name].append(images / cpu)
            print(f"epoch {epoch} {name:8s} {images / wall:8.1f} img/s wall", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        train(config.replace(out_dir=os.path.join(tmp, "run")))
        rows = read_metrics(os.path.join(tmp, "run", "metrics.jsonl"))
    train_cli = statistics.median(r["images_per_s"] for r in rows[1:])  # epoch 1: warm-up
    med = {k: statistics.median(v) for k, v in wall_ips.items()}
    pairs = [p / b for p, b in zip(wall_ips["project"], wall_ips["bare"], strict=True)]
    result = {
        "model": args.model,
        "head": base.head_kind,
        "pool": base.pool_name,
        "batch_size": args.batch_size,
        "images_per_epoch": len(loader) * args.batch_size,
        "timed_epochs": args.epochs,
        "device": str(device),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "bare_images_per_s": round(med["bare"], 1),
        "project_loop_images_per_s": round(med["project"], 1),
        "ratio_project_over_bare": round(med["project"] / med["bare"], 4),
        "median_ratio_of_epoch_pairs": round(statistics.median(pairs), 4),
        "best_ratio": round(max(wall_ips["project"]) / max(wall_ips["bare"]), 4),
    }
    if device.type == "cpu":  # CPU time: what each loop costs, whatever else the machine runs
        cpu_med = {k: statistics.median(v) for k, v in cpu_ips.items()}
        result["bare_images_per_cpu_s"] = round(cpu_med["bare"], 1)
        result["project_images_per_cpu_s"] = round(cpu_med["project"], 1)
        result["cpu_time_ratio_project_over_bare"] = round(cpu_med["project"] / cpu_med["bare"], 4)
    result.update({
        "train_cli_images_per_s": round(train_cli, 1),
        "ratio_train_cli_over_bare": round(train_cli / med["bare"], 4),
        "target_ratio": 0.95,
    })  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
