"""The peer of every quality figure: the PyTorch DCGAN example's loop trained on a
ganforge dataset and judged by ganforge's evaluator, and the time-to-quality benchmark
that puts the two side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from ganforge.datasets.digits import DigitsDataset
from ganforge.evaluation.evaluator import Evaluator
from ganforge.peer import PlainAsGenerator, train_plain

ROOT = Path(__file__).resolve().parent.parent


def test_plain_loop_trains_on_a_dataset_and_is_judged(plugins) -> None:
    data = DigitsDataset(DigitsDataset.Params(image_size=16))
    seen: list[tuple[int, float]] = []
    metric = plugins.registry.create("metric", "digits_is", {"n_fake": 200})
    evaluator = Evaluator({"is": ("digits_is", metric)}, None, {"use": "digits"},
                          torch.device("cpu"), registry=plugins.registry)

    def judge(step: int, generator: PlainAsGenerator, seconds: float) -> None:
        assert seconds > 0
        seen.append((step, evaluator.run(generator, step)[0].value))

    before = [p.clone() for p in train_plain(data, steps=0, batch_size=8, width=4, seed=0,
                                             nz=8).parameters()]
    generator = train_plain(data, steps=5, batch_size=8, width=4, seed=0, nz=8, every=2,
                            hook=judge)
    assert [step for step, _ in seen] == [2, 4, 5]
    assert all(1.0 <= value <= 10.0 for _, value in seen)
    after = list(generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    z = generator.sample_latent(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, 8) and generator(z).shape == (3, 1, 16, 16)
    # Same seed, same data order and weights: the loop is reproducible.
    again = train_plain(data, steps=5, batch_size=8, width=4, seed=0, nz=8)
    assert all(torch.equal(a, b) for a, b in zip(after, again.parameters(), strict=True))


def test_time_to_quality_prints_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "ttq.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--steps", "20",
         "--every", "10", "--n", "300", "--levels", "1.0,10.0", "--json", str(out),
         "--set", "generator.width=8", "--set", "discriminator.width=8",
         "--set", "run.batch_size=16"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert [p["step"] for p in figures["ganforge"]] == [10, 20]
    assert [p["step"] for p in figures["plain"]] == [10, 20]
    low, high = figures["levels"]
    # Every IS is at least 1, so both reach level 1 at their first evaluation; 10 is the
    # ceiling, not reached by 20 steps.
    assert low["ganforge"]["step"] == 10 and low["plain"]["step"] == 10
    assert low["ratio"] > 0 and high["ratio"] is None
    assert "ratio (plain s / ganforge s)" in result.stdout and "neither" in result.stdout
