"""Many processes: ``torchrun --nproc_per_node=2 -m ganforge run`` with the gloo backend on
the CPU trains like one process at the same global batch, writes files from rank 0 only,
and resumes."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.checkpoint_format import read_checkpoint

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
in_memory = "none"  # through the data loader: its workers are part of what is tested

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
    assert final.step == 50 and final.trainer.batches_seen == 50
    assert [x["step"] for x in losses(tmp_path / "ddp")][-2:] == [45, 50]


def start_torchrun(recipe: Path, out: Path, *extra: str) -> subprocess.Popen:
    """torchrun in a session of its own, as a terminal's foreground job would be."""
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "ganforge", "run", str(recipe), "--out",
         str(out), "--quiet", "--set", "run.steps=100000", "--set", "run.log_every=2",
         "--set", "run.checkpoint_every=100000", "--set", "run.num_workers=1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_training(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.time() + 120
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "no metrics line within 120 s"
        time.sleep(0.2)


def children(pid: int) -> list[tuple[int, list[bytes]]]:
    """``(pid, environment)`` of every live child of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(entry.name), environ))
    return found


def worker_pid(launcher: int, rank: int) -> int:
    """The pid of the worker of ``rank`` started by the torchrun process ``launcher``."""
    for pid, environ in children(launcher):
        if f"RANK={rank}".encode() in environ:
            return pid
    raise AssertionError(f"no rank {rank} worker under torchrun {launcher}")


def only_checkpoint(out: Path) -> int:
    checkpoints = list((out / "checkpoints").glob("step-*.safetensors"))
    assert len(checkpoints) == 1, checkpoints
    return read_checkpoint(checkpoints[0]).step


def test_ctrl_c_in_the_terminal_stops_every_rank_after_one_step(tmp_path: Path) -> None:
    """The terminal's SIGINT reaches torchrun, which forwards it to each worker's process
    group, data-loader worker included: the run stops cleanly with a checkpoint."""
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "ddp"
    proc = start_torchrun(recipe, out)
    wait_for_training(proc, out)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground job
    _, err = proc.communicate(timeout=120)
    # torchrun itself ends with its own SignalException traceback (exit 1); the workers
    # must not: no abort, no traceback through ganforge.
    assert "KeyboardInterrupt" not in err and "ganforge/" not in err, err
    assert err.count("interrupted (SIGINT) at step") == 1, err  # rank 0 alone reports
    step = only_checkpoint(out)
    assert f"interrupted (SIGINT) at step {step}:" in err
    logged = [x["step"] for x in losses(out)]
    assert step >= max(logged)
    resumed = torchrun(recipe, out, "--resume", "--set", f"run.steps={step + 4}")
    assert resumed.returncode == 0, resumed.stderr
    assert read_checkpoint(out / "checkpoints" / f"step-{step + 4:07d}.safetensors").step == \
        step + 4


def test_a_signal_to_one_rank_stops_all_ranks_after_the_same_step(tmp_path: Path) -> None:
    """SIGTERM reaching rank 1 only (another node, a scheduler's kill): the ranks agree
    through the stop vote and rank 0 writes the checkpoint of that step."""
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "ddp"
    proc = start_torchrun(recipe, out)
    wait_for_training(proc, out)
    os.kill(worker_pid(proc.pid, 1), signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert err.count("interrupted (SIGTERM) at step") == 1, err
    step = only_checkpoint(out)
    assert f"interrupted (SIGTERM) at step {step}:" in err
    assert proc.returncode == 1 and "exitcode  : 143" in err  # torchrun's failure summary


def test_a_schedulers_sigterm_to_every_process_is_one_stop(tmp_path: Path) -> None:
    """SLURM signals every process of the job step: each worker gets SIGTERM directly and
    again from torchrun a moment later. The copy is not a second signal: no abort."""
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "ddp"
    proc = start_torchrun(recipe, out)
    wait_for_training(proc, out)
    workers = [pid for pid, _ in children(proc.pid)]
    loaders = [pid for worker in workers for pid, _ in children(worker)]
    assert len(workers) == 2 and loaders
    for pid in [*workers, *loaders, proc.pid]:
        os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "KeyboardInterrupt" not in err and "ganforge/" not in err, err
    step = only_checkpoint(out)
    assert f"interrupted (SIGTERM) at step {step}:" in err, err


class _OtherRank:
    """Rank 1 of 2, for the checkpoint agreement: rank 0's verdict comes back through
    ``maximum`` (here: rank 0 found non-finite state)."""

    enabled, is_main, rank, world_size = True, False, 1, 2

    def maximum(self, tensor):
        return tensor.fill_(1.0)


def test_every_rank_stops_when_rank_0_refuses_the_checkpoint(plugins, tmp_path: Path) -> None:
    """Only rank 0 checks what it writes, but the periodic save is agreed, so the other
    ranks raise too instead of waiting at their next collective."""
    from ganforge.errors import TrainingError
    from ganforge.training import Trainer

    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE)
    trainer = Trainer(load_recipe(recipe, plugins.registry), plugins, tmp_path / "run",
                      progress=False)
    trainer.dist = _OtherRank()
    with pytest.raises(TrainingError, match="non-finite state \\(found by rank 0\\)"):
        trainer.save_checkpoint()
    # The best-metric checkpoint is written by rank 0 alone: no agreement, no error here.
    assert trainer.save_checkpoint(tmp_path / "best-fid.safetensors").name == \
        "best-fid.safetensors"


RANK_WEIGHTS = """
import hashlib, os, sys
from pathlib import Path

import pytest

from ganforge import load_plugins
from ganforge.recipe import load_recipe
from ganforge.training import Trainer

plugins = load_plugins()
recipe = load_recipe(sys.argv[1], plugins.registry, sys.argv[3:])
trainer = Trainer(recipe, plugins, sys.argv[2], progress=False)
trainer.fit()
for name in ("generator", "discriminator"):
    # parameters only: BatchNorm's running statistics stay per process by design
    state = dict(getattr(trainer, name).named_parameters())
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].detach().cpu().contiguous().numpy().tobytes())
    Path(sys.argv[2], f"{name}-rank{os.environ['RANK']}.sha256").write_text(digest.hexdigest())
"""


def test_compiled_ranks_keep_identical_weights_with_penalties_and_ada(tmp_path: Path) -> None:
    """run.compile under torchrun (torch.compile wraps the DDP modules, split at bucket
    boundaries) with a lazy R1 penalty (double backward through the plain D, beside the
    compiled DDP module), a gradient penalty and ADA (whose adjustments all-reduce the
    logit signs). A penalty's gradient joins the loss's in one backward pass, so DDP
    all-reduces the sum and every rank applies the same update: after training, the
    parameters of G and D are bit-identical on both ranks (a penalty computed outside the
    all-reduce would make them drift). BatchNorm's running statistics stay per process, by
    design."""
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE)
    script = tmp_path / "rank_weights.py"
    script.write_text(RANK_WEIGHTS)
    out = tmp_path / "ddp"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", str(script), str(recipe), str(out), "run.steps=6",
         "run.log_every=3", "run.compile=true", "discriminator.norm=none",
         "regularizers.r1.use=r1", "regularizers.r1.every=2",
         "regularizers.gp.use=gradient_penalty", "augment.use=ada", "augment.interval=1",
         "augment.initial_p=0.3"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("generator", "discriminator"):
        rank0, rank1 = ((out / f"{name}-rank{r}.sha256").read_text() for r in (0, 1))
        assert rank0 == rank1, name
    logged = losses(out)
    assert [x["step"] for x in logged] == [3, 6]
    assert all(math.isfinite(x["loss_d"]) and math.isfinite(x["loss_g"]) for x in logged)
    assert all(math.isfinite(x["reg/gp"]) and x["reg/gp"] > 0 for x in logged)
    assert all(math.isfinite(x["reg/r1"]) and x["reg/r1"] > 0 for x in logged)
    assert all(0 <= x["aug/p"] <= 1 for x in logged)
