"""Write an image-folder subset of a class-folder archive: the first K images per class.

For runs on "an image folder of real images" that must fit a 2-core CPU, e.g. the
ResNet-18 fine-tune in BENCHMARKS.md ("Real networks"): 500 training and 100 test images
per class of the CIFAR-10 JPEG copy, copied byte for byte (no re-encoding) into
``OUT/train/<class>/`` and ``OUT/test/<class>/``. Files are taken in name order, so the
subset is the same on every machine.

Usage:
    python benchmarks/folder_subset.py ../shared/data/cifar10-jpg.tar.gz runs/cifar10-folder \\
        --train-per-class 500 --test-per-class 100
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", help="a .tar(.gz) holding train/<class>/* and test/<class>/*")
    parser.add_argument("out", help="the folder to write")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args(argv)
    quota = {"train": args.train_per_class, "test": args.test_per_class}

    with tarfile.open(args.archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        taken: dict[tuple[str, str], int] = defaultdict(int)
        out = Path(args.out)
        for member in members:
            parts = Path(member.name).parts
            split = next((p for p in parts if p in quota), None)
            if split is None or len(parts) < 3:
                continue
            cls = parts[parts.index(split) + 1]
            if taken[split, cls] >= quota[split]:
                continue
            target = out / split / cls / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            taken[split, cls] += 1
    for split in quota:
        counts = sorted(n for (s, _), n in taken.items() if s == split)
        print(f"{split}: {sum(counts)} images in {len(counts)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
