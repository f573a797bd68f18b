"""Training-loop overhead: ``globalpool train``'s loop against a bare PyTorch loop.

Both loops train the same architecture (same initial weights) on the same batches from
the same in-memory ``Loader`` (same seed, augmentation and epoch, so identical tensors):

- bare: ``for x, y in loader: loss = cross_entropy(model(x), y); zero_grad; backward;
  step`` and nothing else;
- project: :func:`globalpool.train.loop.train_one_epoch`, the function ``train()`` runs
  each epoch (per-step learning-rate schedule, NaN check, on-device loss/accuracy sums).

Epochs alternate bare / project (and the Keras contenders below), rotating which goes
first, so that drift in machine load hits all alike; the first epoch of each is a warm-up
and is not counted. ``--channels-last`` runs both torch loops (and ``train()``) in
channels-last memory format; ``--no-augment`` drops their crop/flip.
Printed: the median images/s of the timed epochs and their ratio, the median of the
per-epoch ratios (each pair ran back to back, under the same load) and the ratio of the
best epochs; on the CPU also images per CPU-second of this process, which other
processes on a shared machine barely disturb. Then one full ``train()`` run on the same
data reports its own images/s (median over epochs but the first) as a third figure;
like the others it times the training pass only (evaluation and checkpoints come after).

Keras (issue 8): when Keras 3 is installed (``pip install 'globalpool[keras]'``; run on
its torch backend, set here), the same network written in Keras layers
(``benchmarks/_keras_model.py``: same layers, same total and trainable parameter counts,
both printed and checked; its own random initialisation) trains with ``model.fit`` in the same
alternation, once per data format (``channels_first``: (N, C, H, W) inputs,
``channels_last``: (N, H, W, C)): same batch size and number of images per epoch, SGD with
the same lr, momentum 0.9, Nesterov and weight decay on rank >= 2 weights (Keras decays
decoupled; the same work per step), sparse cross-entropy on logits plus an accuracy metric
(the project's loop sums loss and accuracy too). Its inputs are the training images,
normalised once into float32 tensors (Keras shuffles and slices them every epoch), with no
augmentation: use ``--no-augment`` so that the torch loops do exactly the same work, or
leave augmentation on to charge its cost to globalpool only. A callback times each epoch
(``on_epoch_begin`` to ``on_epoch_end``); ``fit`` is called for one epoch per round, so
its per-call set-up is outside the timing, as it is for the epochs of one long ``fit``.
Keras' first epoch (building, warm-up) is not counted. ``--no-keras`` skips it.

Targets: the project's loop within 5% of the bare loop (ratio >= 0.95); the project's loop
at least 1.3x Keras' images/s (``ratio_project_over_keras_*`` >= 1.3).

Usage:
    python benchmarks/bench_train.py                      # fastnet on shapes, CPU/GPU
    python benchmarks/bench_train.py --model smallgap --epochs 6 --json out.json
    # the article-fmnist protocol (reproduce), on 12,800 Fashion-MNIST images
    python benchmarks/bench_train.py --claim article-fmnist --data ../shared/data/fashion-mnist \
        --n-train 12800 --epochs 5
    # issue 8, CIFAR-shaped: 32x32, batch 256, 2 threads, beside Keras (both formats)
    python benchmarks/bench_train.py --size 32 --batch-size 256 --threads 2 \
        --n-train 5120 --epochs 5 --no-augment --json bench_train_keras.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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


def keras_contenders(model, train_set, data, n_images, batch_size, config, device) -> dict:
    """The Keras twins of ``model``, one per data format, as bench contenders.

    Returns ``{"contenders": {"keras_channels_first": fn, "keras_channels_last": fn},
    "keras": version, ...}`` where ``fn(epoch)`` runs ``fit`` for that epoch and returns
    ``(images, wall seconds, CPU seconds)`` of the epoch; without Keras, or for a model that
    has no Keras translation, no contenders and a ``keras_note`` saying why (also printed).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:  # _keras_model sits beside this script
        sys.path.insert(0, here)
    from _keras_model import import_keras, keras_twin, param_counts
    from globalpool.data import normalize
    from globalpool.models import count_params

    keras = import_keras()
    if keras is None:
        note = "keras not installed: pip install 'globalpool[keras]' to time model.fit beside"
        print(f"note: {note}", file=sys.stderr)
        return {"keras": None, "keras_note": note}
    torch_params = {
        "total": count_params(model)["total"],
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    info: dict = {"keras": keras.__version__, "torch_params": torch_params}
    keras_device = str(device)
    keras.utils.set_random_seed(0)
    # The same images the torch loops draw from, normalised once (Keras slices them).
    x_first = normalize(train_set.images[:n_images], data.mean, data.std).to(device)
    y = train_set.labels[:n_images].to(device)
    inputs = {
        "channels_first": x_first.contiguous(),
        "channels_last": x_first.permute(0, 2, 3, 1).contiguous(),
    }

    class EpochTimer(keras.callbacks.Callback):
        """Wall and CPU seconds of the last epoch, from its begin to its end callback."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.wall = time.perf_counter() - self.start[0]
            self.cpu = time.process_time() - self.start[1]

    contenders = {}
    for data_format, x in inputs.items():
        with keras.device(keras_device):
            try:
                twin = keras_twin(keras, model, tuple(x_first.shape[1:]), data_format)
            except ValueError as err:
                print(f"note: no Keras contender: {err}", file=sys.stderr)
                return {**info, "keras_note": str(err)}
            keras_params = param_counts(twin)
            print(
                f"params (total, trainable): globalpool {tuple(torch_params.values())}, "
                f"keras {data_format} {tuple(keras_params.values())}",
                file=sys.stderr,
            )
            info[f"keras_{data_format}_params"] = keras_params
            if keras_params != torch_params:
                note = (
                    f"keras twin has {keras_params} parameters, the model {torch_params}: "
                    "not the same network, not timed"
                )
                print(f"note: {note}", file=sys.stderr)
                return {**info, "keras_note": note}
            optimizer = keras.optimizers.SGD(
                learning_rate=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                weight_decay=config.weight_decay,
            )  # fmt: skip
            # As the project's param_groups: no decay on biases and BN scales/shifts.
            optimizer.exclude_from_weight_decay(
                var_list=[v for v in twin.trainable_weights if len(v.shape) < 2]
            )
            twin.compile(
                optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["sparse_categorical_accuracy"],
            )

        def run_epoch(epoch, twin=twin, x=x):
            timer = EpochTimer()
            with keras.device(keras_device):
                twin.fit(
                    x, y, batch_size=batch_size, epochs=epoch, initial_epoch=epoch - 1,
                    shuffle=True, verbose=0, callbacks=[timer],
                )  # fmt: skip
            return n_images, timer.wall, timer.cpu

        contenders[f"keras_{data_format}"] = run_epoch
    return {**info, "contenders": contenders}


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
    parser.add_argument(
        "--no-augment", action="store_true",
        help="no crop/flip in the torch loops (the Keras contender never augments)",
    )  # fmt: skip
    parser.add_argument(
        "--channels-last", action="store_true",
        help="torch loops in channels-last memory format (model and batches)",
    )  # fmt: skip
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras contender")
    parser.add_argument(
        "--claim", help="time a `globalpool reproduce` claim's protocol instead (its model, "
        "data, optimiser, augmentation and memory format; --n-train images of its data)",
    )  # fmt: skip
    parser.add_argument("--data", help="the claim's data path (e.g. ../shared/data/fashion-mnist)")
    parser.add_argument(
        "--main-job", action="store_true",
        help="time the main job's protocol instead (globalpool compare's defaults: model, "
        "data, optimiser, batch size; --head/--pool pick the head)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from globalpool.data import Augment, Loader, load_dataset, train_val_split
    from globalpool.machine import isa_caps, machine_line
    from globalpool.models import create_model
    from globalpool.train import TrainConfig, train
    from globalpool.train.distributed import resolve_device
    from globalpool.train.loop import train_one_epoch
    from globalpool.train.metrics import read_metrics
    from globalpool.train.optim import build_optimizer
    from globalpool.train.schedule import lr_at

    device = resolve_device(args.device)
    if args.claim:
        from globalpool.experiment.claims import get_claim
        from globalpool.experiment.reproduce import plan_runs

        run = plan_runs(get_claim(args.claim), seeds=[0], data=args.data)[0]
        config = run["config"]
        dataset_kwargs = {**config.dataset_kwargs, "train_subset": args.n_train}
        config = config.replace(
            epochs=args.epochs + 1, dataset_kwargs=dataset_kwargs, device=device.type,
            quiet=True, tensorboard=False,
        )  # fmt: skip
        args.model, args.head, args.pool = config.model, config.head, config.pool
        args.batch_size, args.channels_last = config.batch_size, config.channels_last
        args.no_augment, args.no_keras = not config.augment, True
    elif args.main_job:
        from globalpool.experiment.compare import default_compare_config

        config = default_compare_config().replace(
            head=args.head, pool=args.pool, epochs=args.epochs + 1, device=device.type,
            quiet=True, tensorboard=False,
        )  # fmt: skip
        dataset_kwargs = dict(config.dataset_kwargs)
        args.model, args.batch_size = config.model, config.batch_size
        args.no_augment, args.no_keras = not config.augment, True
    else:
        dataset_kwargs = {"n_train": args.n_train, "n_test": 256, "size": args.size}
        config = TrainConfig(
            model=args.model, head=args.head, pool=args.pool, dataset="shapes",
            dataset_kwargs=dataset_kwargs, epochs=args.epochs + 1, batch_size=args.batch_size,
            device=device.type, quiet=True, tensorboard=False, weight_decay=5e-4,
            augment=not args.no_augment, channels_last=args.channels_last,
        )  # fmt: skip

    data = load_dataset(config.dataset, **dataset_kwargs)
    train_set, _ = train_val_split(data.train, config.val_fraction, config.seed)
    in_chans, height, width = (int(s) for s in train_set.images.shape[1:])
    torch.manual_seed(0)
    base = create_model(
        args.model, len(data.classes), head=args.head, pool=args.pool, in_chans=in_chans,
        input_size=(height, width), **config.model_kwargs,
    ).to(device)  # fmt: skip
    if args.channels_last:
        base = base.to(memory_format=torch.channels_last)
    bare_model, project_model = copy.deepcopy(base), copy.deepcopy(base)
    loader = Loader(
        train_set, args.batch_size, shuffle=True, augment=None if args.no_augment else Augment(),
        mean=data.mean, std=data.std, device=device, seed=0, drop_last=True,
        channels_last=args.channels_last,
    )  # fmt: skip
    if config.optimizer == "adamw":  # the claim's Adam: no decay anywhere, one group
        bare_opt = torch.optim.AdamW(
            bare_model.parameters(), lr=config.lr, betas=config.betas,
            weight_decay=config.weight_decay,
        )  # fmt: skip
    else:
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

    contenders: dict[str, object] = {
        "bare": lambda epoch: timed(lambda: bare_epoch(bare_model, loader, bare_opt), device),
        "project": lambda epoch: timed(lambda: project_epoch(epoch), device),
    }
    keras_info = {} if args.no_keras else keras_contenders(
        base, train_set, data, len(loader) * args.batch_size, args.batch_size, config, device
    )  # fmt: skip
    contenders.update(keras_info.pop("contenders", {}))
    names = list(contenders)
    wall_ips: dict[str, list[float]] = {name: [] for name in names}
    cpu_ips: dict[str, list[float]] = {name: [] for name in names}
    for epoch in range(1, args.epochs + 2):
        # Rotate the order every epoch, so no contender always follows the same one.
        shift = (epoch - 1) % len(names)
        for name in names[shift:] + names[:shift]:
            loader.set_epoch(epoch)
            images, wall, cpu = contenders[name](epoch)
            if epoch > 1:  # epoch 1 warms up every contender
                wall_ips[name].append(images / wall)
                cpu_ips[name].append(images / cpu)
            print(f"epoch {epoch} {name:14s} {images / wall:8.1f} img/s wall", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        train(config.replace(out_dir=os.path.join(tmp, "run")))
        rows = read_metrics(os.path.join(tmp, "run", "metrics.jsonl"))
    train_cli = statistics.median(r["images_per_s"] for r in rows[1:])  # epoch 1: warm-up
    med = {k: statistics.median(v) for k, v in wall_ips.items()}
    pairs = [p / b for p, b in zip(wall_ips["project"], wall_ips["bare"], strict=True)]
    result = {
        "command": "python benchmarks/bench_train.py " + " ".join(argv or sys.argv[1:]),
        "cpu_isa_env": isa_caps(),  # AVX2-only emulation, when set
        "claim": args.claim,
        "main_job": args.main_job,
        "dataset": config.dataset,
        "optimizer": config.optimizer,
        "model": args.model,
        "head": base.head_kind,
        "pool": base.pool_name,
        "batch_size": args.batch_size,
        "images_per_epoch": len(loader) * args.batch_size,
        "timed_epochs": args.epochs,
        "device": str(device),
        "machine": f"{machine_line()}, load {os.getloadavg()[0]:.1f}",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "bare_images_per_s": round(med["bare"], 1),
        "project_loop_images_per_s": round(med["project"], 1),
        "ratio_project_over_bare": round(med["project"] / med["bare"], 4),
        "median_ratio_of_epoch_pairs": round(statistics.median(pairs), 4),
        "best_ratio": round(max(wall_ips["project"]) / max(wall_ips["bare"]), 4),
        "augment": not args.no_augment,
        "channels_last": args.channels_last,
    }
    if device.type == "cpu":  # CPU time: what each loop costs, whatever else the machine runs
        cpu_med = {k: statistics.median(v) for k, v in cpu_ips.items()}
        result["bare_images_per_cpu_s"] = round(cpu_med["bare"], 1)
        result["project_images_per_cpu_s"] = round(cpu_med["project"], 1)
        result["cpu_time_ratio_project_over_bare"] = round(cpu_med["project"] / cpu_med["bare"], 4)
    for name in names[2:]:  # the Keras contenders, one per data format
        keras_med = statistics.median(wall_ips[name])
        per_round = [p / k for p, k in zip(wall_ips["project"], wall_ips[name], strict=True)]
        result.update({
            f"{name}_images_per_s": round(keras_med, 1),
            f"ratio_project_over_{name}": round(med["project"] / keras_med, 4),
            f"median_ratio_project_over_{name}_of_rounds": round(statistics.median(per_round), 4),
            f"ratio_bare_over_{name}": round(med["bare"] / keras_med, 4),
        })  # fmt: skip
        if device.type == "cpu":
            keras_cpu = statistics.median(cpu_ips[name])
            result[f"{name}_images_per_cpu_s"] = round(keras_cpu, 1)
            result[f"cpu_time_ratio_project_over_{name}"] = round(cpu_med["project"] / keras_cpu, 4)
    result.update(keras_info)
    result.update({
        "train_cli_images_per_s": round(train_cli, 1),
        "ratio_train_cli_over_bare": round(train_cli / med["bare"], 4),
        "target_ratio": 0.95,
        "target_ratio_project_over_keras": 1.3,
    })  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
