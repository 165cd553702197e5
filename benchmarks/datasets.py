"""Images/s of ganforge's ``lsun`` and ``prepared`` datasets against
``torchvision.datasets.LSUN``, on one generated LSUN-format lmdb, printed side by side.

    python benchmarks/datasets.py [--images 2000] [--workers 2] [--batch 128] [--size 64]

Every reader goes through the same DataLoader settings (except ``prepared`` held in memory,
which the trainer indexes directly, as it does in training). Images are WebP at about
256 x 300 pixels, like LSUN bedrooms; each loader is run for one full pass after one
warm-up pass of 2 batches.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganforge import load_plugins  # noqa: E402
from ganforge.datasets.policy import collate_images  # noqa: E402
from ganforge.datasets.prepared import prepare_dataset  # noqa: E402
from ganforge.training.data import real_batches  # noqa: E402
from tests.lsun_data import make_lsun  # noqa: E402


def timed(batches, images_total: int) -> float:
    it = iter(batches)
    for _ in range(2):
        next(it)
    start = time.perf_counter()
    seen = 0
    while seen < images_total:
        batch = next(it)
        images = batch[0] if isinstance(batch, list | tuple) else getattr(batch, "images", batch)
        seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def endless(loader):
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    import torchvision.datasets as tvd
    import torchvision.transforms as T

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        make_lsun(tmp_path / "lsun", webp=args.images, jpeg=0, bad=False, size=(256, 300))
        plugins = load_plugins()
        params = {"root": str(tmp_path / "lsun"), "image_size": args.size}
        loader_kwargs = {"batch_size": args.batch, "num_workers": args.workers,
                         "persistent_workers": args.workers > 0, "drop_last": True}
        results: dict[str, float] = {}

        transform = T.Compose([T.Resize(args.size), T.CenterCrop(args.size), T.ToTensor(),
                               T.Normalize((0.5,) * 3, (0.5,) * 3)])
        with contextlib.chdir(tmp_path):  # torchvision pickles its key cache into the cwd
            theirs = tvd.LSUN(str(tmp_path / "lsun"), classes=["bedroom_train"],
                              transform=transform)
            loader = DataLoader(theirs, shuffle=True, **loader_kwargs)
            results["torchvision LSUN"] = timed(endless(loader), args.images)
            # lmdb allows one handle per database per process: release torchvision's.
            theirs.dbs[0].env.close()
            del loader, theirs

        ours = plugins.registry.create("dataset", "lsun", params)
        loader = DataLoader(ours, shuffle=True, collate_fn=collate_images, **loader_kwargs)
        results["ganforge lsun"] = timed(endless(loader), args.images)

        source = {"use": "lsun", **params}
        report = prepare_dataset(ours, source, tmp_path / "prepared", workers=args.workers,
                                 progress=False)
        print(f"data prepare: {report.count} images in {report.seconds:.1f} s "
              f"({report.count / report.seconds:.0f} images/s)")
        for mode in ("none", "host", "device"):
            prepared = plugins.registry.create("dataset", "prepared", {
                "root": str(tmp_path / "prepared"), "image_size": args.size, "in_memory": mode})
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            batches = real_batches(prepared, args.batch, 0, 0, num_workers=args.workers,
                                   device=device, pin_memory=False)
            label = f"ganforge prepared ({mode})"
            results[label] = timed(batches, 10 * args.images)

    base = results["torchvision LSUN"]
    print(f"\n{args.images} WebP images ~256x300 -> {args.size}x{args.size}, batch "
          f"{args.batch}, {args.workers} workers, torch {torch.__version__}")
    print(f"{'loader':<28}{'images/s':>12}{'vs torchvision':>16}")
    for name, rate in results.items():
        print(f"{name:<28}{rate:>12.0f}{rate / base:>15.1f}x")


if __name__ == "__main__":
    main()
