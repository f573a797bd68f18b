"""Training throughput of the models on this machine (CPU by default).

Measures images/s of full training steps (forward, cross-entropy, backward, SGD step) on
random 32x32 batches, for each model named, all in the same run so the numbers compare.

    .venv/bin/python benchmarks/bench_models.py                    # fastnet vs references
    .venv/bin/python benchmarks/bench_models.py fastnet --batch 256 --steps 5 --threads 2
    .venv/bin/python benchmarks/bench_models.py fastnet:widths=64,256,256 vgg_small --device cuda

A spec ``name:key=v1,v2`` passes ``key=(v1, v2)`` to ``create_model`` (e.g. fastnet's widths).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from globalpool.models import count_flops, count_params, create_model

DEFAULT = ["fastnet", "fastnet:widths=64,256,256", "vgg_small", "nin"]


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        values = tuple(int(v) for v in value.split(","))
        kwargs[key] = values if len(values) > 1 else values[0]
    return name, kwargs


def train_throughput(
    model, batch: int, steps: int, device: str, channels_last: bool
) -> tuple[float, float]:
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, model.in_chans, *model.input_size, generator=gen).to(device)
    y = torch.randint(0, model.num_classes, (batch,), generator=gen).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up (allocations, cuDNN / oneDNN algorithm choice)
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    # mean over all steps, and the fastest step (closest to an unloaded machine when other
    # processes share the cores)
    return batch * steps / sum(times), batch / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"device={args.device} threads={torch.get_num_threads()} batch={args.batch} "
        f"steps={args.steps} size={args.size} channels_last={args.channels_last}"
    )
    print(
        f"{'model':40} {'params':>10} {'MFLOPs/img':>11} {'img/s mean':>11} {'ratio':>6} "
        f"{'img/s best':>11} {'ratio':>6}"
    )
    base = None
    for spec in args.specs:
        name, kwargs = parse_spec(spec)
        torch.manual_seed(0)
        model = create_model(name, 10, in_chans=3, input_size=args.size, **kwargs)
        flops = count_flops(model, args.size) / 1e6
        mean, best = train_throughput(
            model, args.batch, args.steps, args.device, args.channels_last
        )
        base = base or (mean, best)
        print(
            f"{spec:40} {count_params(model)['total']:>10,} {flops:>11.1f} {mean:>11.0f} "
            f"{mean / base[0]:>6.2f} {best:>11.0f} {best / base[1]:>6.2f}"
        )


if __name__ == "__main__":
    main()
