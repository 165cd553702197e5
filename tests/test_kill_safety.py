"""A run can be killed at any instant: it loses at most the steps since its last
checkpoint, no partial file is ever picked, and resuming gives bit-identical state.

The processes are real: training runs in a child ``python -m ganforge``, killed with
SIGKILL (at random moments, and deterministically in the middle of a checkpoint write) or
interrupted with SIGINT. ``GANFORGE_KILL_ITERATIONS`` sets the number of random kills
(the ``kill-loop`` nox session runs many).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.checkpoint_format import latest_checkpoint, read_checkpoint

STEPS = 40
SETTINGS = [f"run.steps={STEPS}", "run.checkpoint_every=1", "run.keep_last=2",
            "run.log_every=5", "run.sample_every=20", "run.num_workers=2",
            "generator.width=16", "discriminator.width=16"]


def child(recipe: Path, out: Path, *extra: str, prelude: str = "",
          new_session: bool = False) -> subprocess.Popen:
    args = ["run", str(recipe), "--out", str(out), "--quiet", *[x for s in SETTINGS for x in
                                                        ("--set", s)], *extra]
    code = (f"{prelude}\nimport sys\nfrom ganforge.cli import main\n"
            f"sys.argv = ['ganforge'] + {args!r}\nmain()")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=new_session)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.glob("*.safetensors")}


def check_invariants(out: Path, before: dict[str, str]) -> dict[str, str]:
    folder = out / "checkpoints"
    now = digests(folder)
    for name, digest in before.items():  # a complete checkpoint never changes
        if name in now:
            assert now[name] == digest, f"{name} changed after a kill"
    for path in folder.glob("step-*.safetensors"):
        read_checkpoint(path)  # every final name holds a complete checkpoint
    if now:
        newest = max(now)
        assert latest_checkpoint(folder).name == newest  # rotation never removed the newest
    return now


def straight_run(plugins, tiny_recipe: Path, out: Path) -> dict[str, torch.Tensor]:
    recipe = load_recipe(tiny_recipe, plugins.registry, SETTINGS)
    return load_file(train(recipe, plugins, out, progress=False).checkpoint)


def test_kill_during_checkpoint_write(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # The 5th checkpoint write (fsync call 9: each checkpoint syncs its file, then its
    # folder) is killed after its temporary file is written and synced,
    # before the rename: the worst moment.
    # Killed right after the temporary of step 5 is synced, before its rename.
    prelude = ("import os, signal\n_fsync = os.fsync\n"
               "def fsync(fd):\n    _fsync(fd)\n"
               "    if '.step-0000005.safetensors.' in os.readlink(f'/proc/self/fd/{fd}'):\n"
               "        os.kill(os.getpid(), signal.SIGKILL)\n"
               "os.fsync = fsync\n")
    proc = child(tiny_recipe, out, prelude=prelude)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    folder = out / "checkpoints"
    left = [p.name for p in folder.glob(".*.tmp")]
    assert len(left) == 1 and left[0].startswith(".step-0000005.safetensors."), left
    assert sorted(p.name for p in folder.glob("step-*.safetensors")) == [
        "step-0000003.safetensors", "step-0000004.safetensors"]
    assert latest_checkpoint(folder).name == "step-0000004.safetensors"
    before = check_invariants(out, {})
    resumed = child(tiny_recipe, out, "--resume")
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    check_invariants(out, {k: v for k, v in before.items() if k in digests(folder)})
    assert list(folder.glob(".*.tmp")) == []  # the killed write's leftover was cleared
    expected = straight_run(plugins, tiny_recipe, tmp_path / "straight")
    got = load_file(folder / f"step-{STEPS:07d}.safetensors")
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []


def test_random_kills_then_exact_resume(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    iterations = int(os.environ.get("GANFORGE_KILL_ITERATIONS", "3"))
    rng = random.Random(0)
    out = tmp_path / "run"
    seen: dict[str, str] = {}
    for _ in range(iterations):
        # --resume always: a kill before the first checkpoint (a slow start on a loaded
        # machine) leaves a run without one, which --resume starts again at step 0.
        proc = child(tiny_recipe, out, "--resume")
        time.sleep(rng.uniform(4.0, 7.0))  # after start-up, somewhere in training
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        seen = check_invariants(out, seen)
        if (out / "checkpoints" / f"step-{STEPS:07d}.safetensors").exists():
            break
    final = child(tiny_recipe, out, "--resume")
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err  # a finished run resumed is finished again: exit 0
    expected = straight_run(plugins, tiny_recipe, tmp_path / "straight")
    got = load_file(out / "checkpoints" / f"step-{STEPS:07d}.safetensors")
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_writes_a_checkpoint_and_exits_128_plus_signal(
        tiny_recipe: Path, tmp_path: Path, sig: signal.Signals, code: int) -> None:
    out = tmp_path / "run"
    # In a session of its own, signalled as a group: what a terminal's Ctrl-C or a
    # scheduler does, so the data-loader workers (run.num_workers=2) get the signal too.
    proc = child(tiny_recipe, out, "--set", "run.checkpoint_every=1000",
                 "--set", "run.steps=100000", new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until it trains (a metrics line appears)
        metrics = out / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().strip():
            break
        time.sleep(0.2)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"interrupted ({sig.name}) at step" in err and "--resume" in err
    checkpoints = list((out / "checkpoints").glob("step-*.safetensors"))
    assert len(checkpoints) == 1
    step = read_checkpoint(checkpoints[0]).step
    logged = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert step >= max(logged)
