"""ganforge's training step against the plain DCGAN loop of the PyTorch example, side by side.

    python benchmarks/train_step.py [--batch 64 128] [--steps 20] [--warmup 5]
                                    [--device auto] [--peak-tflops T] [--set KEY=VALUE ...]

Runs the paper's DCGAN (64x64, width 64 unless --set says otherwise) on random uint8 images
held on the device: (a) the loop as the PyTorch DCGAN example writes it
(``ganforge/benchmarking.py``, Sigmoid + BCELoss, ``.item()`` every step) and (b) ganforge's
``Trainer`` step with the recipe's speed switches. Prints images/s of both, the ratio, the
data loader's share of ganforge's step, peak memory, the FLOPs of ganforge's step (counted
by torch's FlopCounterMode), the TFLOP/s it reached and, given the device's peak (known
GPUs below, or ``--peak-tflops``), the fraction of that roofline, and what one step of
each dispatches (operators; on CUDA also kernels and launch calls). ``--set run.graph=step``
times the whole step compiled as one graph.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganforge import load_plugins  # noqa: E402
from ganforge.benchmarking import bench_recipe, known_peak_tflops  # noqa: E402
from ganforge.recipe import apply_overrides, build_recipe  # noqa: E402
from ganforge.training import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s for the roofline fraction "
                        "(default: known bf16 peak of the GPU, none on a CPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="recipe override, e.g. run.precision=fp32")
    args = parser.parse_args()
    plugins = load_plugins()
    table = {
        "run": {"device": args.device, "log_every": 10**9, "num_workers": 2},
        "dataset": {"use": "synthetic", "count": 4096, "image_size": 64, "channels": 3},
        "generator": {"use": "dcgan", "latent_dim": 100, "width": 64},
        "discriminator": {"use": "dcgan", "width": 64},
    }
    recipe = build_recipe(apply_overrides(table, args.overrides), plugins.registry)
    rows = bench_recipe(recipe, plugins, args.steps, args.warmup, args.batch)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    peak = args.peak_tflops or known_peak_tflops(device, rows[0].bf16)
    print(f"DCGAN 64x64, width {recipe['generator'].params.width}, {name}, torch "
          f"{torch.__version__}, overrides: {' '.join(args.overrides) or 'none'}")
    print(f"{'batch':>6}{'plain img/s':>14}{'ganforge img/s':>16}{'ratio':>8}"
          f"{'loader share':>14}{'GFLOP/img':>11}{'TFLOP/s':>9}{'roofline':>10}   peak memory")
    for row in rows:
        roofline = f"{100 * row.tflops / peak:>9.1f}%" if peak else f"{'-':>10}"
        print(f"{row.batch:>6}{row.plain:>14.1f}{row.ganforge:>16.1f}{row.ratio:>7.2f}x"
              f"{100 * row.loader_share:>13.0f}%{row.flops_per_image / 1e9:>11.2f}"
              f"{row.tflops:>9.2f}{roofline}   {row.peak_memory}")
    print("launches per step (torch.profiler; ops = operators dispatched by the host):")
    for row in rows:
        print(f"{row.batch:>6}  ganforge: {row.launches}; plain loop: {row.plain_launches}")
    if peak:
        print(f"roofline: {peak:g} TFLOP/s peak; the step's floor at batch {rows[-1].batch} is "
              f"{1e3 * rows[-1].flops_per_image * rows[-1].batch / (peak * 1e12):.3f} ms")


if __name__ == "__main__":
    main()
