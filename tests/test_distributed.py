"""Many processes: ``torchrun --nproc_per_node=2 -m ganforge run`` with the gloo backend on
the CPU trains like one process at the same global batch, writes files from rank 0 only,
and resumes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.checkpoint import read_checkpoint

RECIPE = """
[run]
steps = 40
batch_size = 32
seed = 0
device = "cpu"
log_every = 5
sample_every = 20
checkpoint_every = 20
precision = "fp32"

[dataset]
use = "digits"
image_size = 32

[generator]
use = "dcgan"
width = 8
latent_dim = 16

[discriminator]
use = "dcgan"
width = 8
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(recipe: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "ganforge", "run", str(recipe), "--out",
         str(out), "--quiet", *extra], capture_output=True, text=True, timeout=300)


def losses(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_like_one(plugins, tmp_path: Path) -> None:
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE)
    result = torchrun(recipe, tmp_path / "ddp")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("finished at step 40") == 1  # rank 0 alone reports
    ddp = losses(tmp_path / "ddp")
    assert [x["step"] for x in ddp] == list(range(5, 45, 5))  # one writer: no duplicates
    single = train(load_recipe(recipe, plugins.registry), plugins, tmp_path / "single",
                   progress=False)
    one = losses(tmp_path / "single")
    # Same global batch (2 x 16 against 1 x 32): the same curve within noise. Measured on
    # the development machine: the largest gap was 0.054 (loss_g at step 40).
    for a, b in zip(one, ddp, strict=True):
        assert abs(a["loss_d"] - b["loss_d"]) < 0.15 and abs(a["loss_g"] - b["loss_g"]) < 0.15
    for key in ("loss_d", "loss_g"):  # and the same trend
        assert (one[-1][key] - one[0][key]) * (ddp[-1][key] - ddp[0][key]) > 0
    assert single.step == 40
    # Resume under DDP, from the checkpoint rank 0 wrote.
    resumed = torchrun(recipe, tmp_path / "ddp", "--resume", "--set", "run.steps=50")
    assert resumed.returncode == 0, resumed.stderr
    final = read_checkpoint(tmp_path / "ddp" / "checkpoints" / "step-0000050.safetensors")
    assert final.step == 50 and final.trainer["batches_seen"] == 50
    assert [x["step"] for x in losses(tmp_path / "ddp")][-2:] == [45, 50]
