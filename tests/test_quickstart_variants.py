"""``benchmarks/quickstart_variants.py``, the probe behind docs/results.md's single-seed
quickstart variants: a 2-step run of it prints the JSON line it documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_probe_trains_and_scores_raw_and_ema(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    done = subprocess.run(
        [sys.executable, "benchmarks/quickstart_variants.py", "tiny", "--set", "run.steps=2",
         "--set", "ema.enabled=true", "--set", "generator.latent_dim=5", "--threads", "1",
         "--n", "500", "--standing-batches", "2", "--runs", str(tmp_path / "runs"),
         "--results", str(results)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(results.read_text()) == row
    assert row["name"] == "tiny" and row["train_s"] > 0
    assert row["overrides"] == ["run.steps=2", "ema.enabled=true", "generator.latent_dim=5"]
    for key in ("raw_eval", "raw_train", "raw_standing", "ema_eval", "ema_train",
                "ema_standing"):
        score, rarest, commonest = row[key]
        assert 1.0 <= score <= 10.0 and 0.0 <= rarest <= 0.1 <= commonest <= 1.0, key
    assert (tmp_path / "runs" / "tiny" / "checkpoints" / "step-0000002.safetensors").is_file()
