"""Batch inference speed on CPU: PyTorch eager vs TorchScript vs onnxruntime, one run.

The default network (``create_model("fastnet", 10)``) in eval mode, float32, random
normalised 32x32 inputs. TorchScript and ONNX files are written with globalpool's own
exporters (each verified against eager first), then every backend runs the same batches.
Throughput is images / median time per batch, the backends taking turns batch by batch;
ratios are against eager in the same run.

Usage:
    .venv/bin/python benchmarks/bench_infer.py [--batch-size 256] [--threads 1]
        [--repeats 20] [--model fastnet] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from globalpool.deploy.export import export_onnx, export_torchscript
from globalpool.models import create_model


def time_interleaved(backends: dict, x: torch.Tensor, repeats: int, warmup: int = 3) -> dict:
    """Median seconds per call of each ``fn(x)``, backends taking turns round by round so
    a change in machine load hits all of them alike (the CPU is shared)."""
    for fn in backends.values():
        for _ in range(warmup):
            fn(x)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(repeats):
        for name, fn in backends.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=32, help="input height = width")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, all backends")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = create_model(args.model, 10).eval()
    x = torch.randn(args.batch_size, model.in_chans, args.size, args.size)

    with tempfile.TemporaryDirectory() as tmp:
        ts_path, onnx_path = Path(tmp) / "m.pt", Path(tmp) / "m.onnx"
        export_torchscript(model, ts_path)
        export_onnx(model, onnx_path)
        scripted = torch.jit.load(str(ts_path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

        with torch.inference_mode():
            reference = model(x)

        def eager(batch):
            with torch.inference_mode():
                return model(batch)

        def torchscript(batch):
            with torch.inference_mode():
                return scripted(batch)

        def onnxruntime(batch):
            return session.run(None, {"image": batch.numpy()})[0]

        backends = {"eager": eager, "torchscript": torchscript, "onnxruntime": onnxruntime}
        diffs = {
            n: float((torch.as_tensor(f(x)) - reference).abs().max()) for n, f in backends.items()
        }
        seconds = time_interleaved(backends, x, args.repeats)
        results = {
            name: {"images_per_s": args.batch_size / seconds[name], "max_abs_diff": diffs[name]}
            for name in backends
        }

    base = results["eager"]["images_per_s"]
    for entry in results.values():
        entry["ratio_vs_eager"] = entry["images_per_s"] / base
    report = {
        "model": args.model,
        "batch_size": args.batch_size,
        "input": [model.in_chans, args.size, args.size],
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "results": results,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{args.model}, batch {args.batch_size} x {model.in_chans}x{args.size}x{args.size}, "
            f"{args.threads} thread(s), median of {args.repeats}; torch {torch.__version__}, "
            f"onnxruntime {ort.__version__}"
        )
        print(f"{'backend':<12} {'images/s':>10} {'vs eager':>9} {'max |diff|':>11}")
        for name, entry in results.items():
            print(
                f"{name:<12} {entry['images_per_s']:>10.0f} {entry['ratio_vs_eager']:>8.2f}x "
                f"{entry['max_abs_diff']:>11.1e}"
            )
    return report


if __name__ == "__main__":
    main()
