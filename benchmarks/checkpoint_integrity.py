"""What the integrity hashes of a checkpoint cost: write and read time of one checkpoint of
about 100 MB, with the SHA-256 of each tensor group recorded and checked, and without.

    python benchmarks/checkpoint_integrity.py [--mb 100] [--repeats 5]

The checkpoint is shaped like a training one (G, D, EMA of G, both optimizers' two moment
tensors, RNG state) in float32 on the CPU. "Without" writes with the hashing turned off
(the file then has no record, as a checkpoint of an older version) and reads that file,
which is not checked; "with" is what ganforge does. Each figure is the median of
``--repeats`` runs, into and out of a temporary folder (the page cache holds the file, so
the disk's speed is mostly left out: the figures are the CPU's cost).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganforge.training import checkpoint_integrity  # noqa: E402
from ganforge.training.checkpoint_format import read_checkpoint, write_checkpoint  # noqa: E402


def tensors(megabytes: float) -> dict[str, torch.Tensor]:
    """About ``megabytes`` MB: each network's weights as 8 tensors; G, D and the EMA of G,
    and Adam's two moments for G and D (7 copies of one network's size in all)."""
    per_tensor = int(megabytes * 1e6 / 4 / 7 / 8)
    generator = torch.Generator().manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    for network in ("generator", "discriminator", "generator_ema"):
        for i in range(8):
            out[f"{network}/layer{i}.weight"] = torch.randn(per_tensor, generator=generator)
    for network in ("generator", "discriminator"):
        for i in range(8):
            for moment in ("exp_avg", "exp_avg_sq"):
                out[f"optimizer/{network}/{i}/{moment}"] = torch.randn(per_tensor,
                                                                       generator=generator)
    out["rng/torch_cpu"] = torch.get_rng_state()
    return out


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="checkpoint size in MB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    state = tensors(args.mb)
    optimizers = {"generator": {"param_groups": [{"params": list(range(8))}]},
                  "discriminator": {"param_groups": [{"params": list(range(8))}]}}

    with tempfile.TemporaryDirectory() as folder:
        plain, hashed = Path(folder) / "plain.safetensors", Path(folder) / "hashed.safetensors"

        def write(path: Path) -> Callable[[], object]:
            return lambda: write_checkpoint(path, state, step=1, recipe_toml="",
                                            versions={}, optimizers=optimizers)

        with mock.patch.object(checkpoint_integrity, "integrity_metadata",
                               side_effect=lambda t: "") as off:
            # An empty record would be refused: the key is dropped from what is written.
            with mock.patch("ganforge.training.checkpoint_format.save_bytes",
                            side_effect=_without_record):
                write_plain = median_seconds(write(plain), args.repeats)
            assert off.called
        write_hashed = median_seconds(write(hashed), args.repeats)
        read_plain = median_seconds(lambda: read_checkpoint(plain), args.repeats)
        read_hashed = median_seconds(lambda: read_checkpoint(hashed), args.repeats)
        size = hashed.stat().st_size
        assert checkpoint_integrity.INTEGRITY_KEY not in _metadata(plain)
        assert checkpoint_integrity.INTEGRITY_KEY in _metadata(hashed)

    print(f"checkpoint of {size / 1e6:.1f} MB ({len(state)} tensors), median of "
          f"{args.repeats}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'':8}{'without hashes':>16}{'with hashes':>14}{'cost':>10}")
    for what, without, with_ in (("write", write_plain, write_hashed),
                                 ("read", read_plain, read_hashed)):
        print(f"{what:8}{without * 1000:>13.0f} ms{with_ * 1000:>11.0f} ms"
              f"{(with_ - without) * 1000:>+7.0f} ms")


def _without_record(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={k: v for k, v in metadata.items()
                                   if k != checkpoint_integrity.INTEGRITY_KEY})


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


if __name__ == "__main__":
    main()
