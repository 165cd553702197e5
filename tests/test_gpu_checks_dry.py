"""``benchmarks/gpu_checks.sh --dry-run``: the GPU lease's script runs its plumbing on the
CPU (tiny sizes, Dynamo disabled, CUDA-only steps listed and skipped) and prints the header
of every step that feeds docs/performance.md's CUDA tables. Slow on a loaded 2-core
machine (about 3 minutes: six short ganforge processes; about 25 s quiet). The dry run
checks the resume plumbing once, with the whole-step graph."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADERS = ["bench defaults", "bench fp32", "bench fp16", "bench compile",
           "bench compile + cuda_graphs", "bench graph step",
           "sngan_cifar10 synthetic, 200 steps", "sngan_cifar10 synthetic + r1 + ada",
           "resume (run.graph=step)"]


def test_the_dry_run_prints_every_table_header(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", "benchmarks/gpu_checks.sh", "--dry-run", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    for header in HEADERS:
        assert f"== {header}" in out, header
    assert "ganforge: " in out and "plain loop: " in out  # launches per step
    assert "resume (run.graph=step): 92 tensors, bit-identical: True" in out
    assert "rc=1" not in out
