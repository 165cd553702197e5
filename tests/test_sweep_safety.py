"""A sweep never deletes what it did not create, one ``ganforge ablate`` works in a sweep
directory at a time, and its ``--jobs`` workers end with it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganforge.errors import RunDirectoryBusy
from ganforge.sweep.plan import plan_sweep
from ganforge.sweep.runner import WORKERS_LOCK, lock_sweep, run_plan

DEADLINE_S = 240  # only a bound for a broken build; every wait below ends on an event

SWEEP = """
[sweep]
seeds = [0]
[sweep.variants.narrow]
"generator.width" = 4
[sweep.variants.wide]
"generator.width" = 8
"""


def sweep_file(folder: Path, tiny_recipe: Path, run_table: str = "") -> Path:
    path = folder / "sweep.toml"
    path.write_text(f'extends = "{tiny_recipe.name}"\n{run_table}{SWEEP}')
    return path


def test_a_run_interrupted_before_its_first_checkpoint_is_not_deleted(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    plan = plan_sweep(sweep_file(tmp_path, tiny_recipe), plugins.registry,
                      out=tmp_path / "sweep")
    folder = plan.runs[0].run_dir
    folder.mkdir(parents=True)
    # What such a run leaves: its recipe.toml (written before training starts) and a torn
    # log; and a file of the user's.
    (folder / "recipe.toml").write_text(plan.runs[0].recipe.to_toml())
    (folder / "notes.txt").write_text("a user's file, not ganforge's")
    (folder / "metrics.jsonl").write_text('{"step": 2, "loss_d": 9.0}\n{"step"')
    outcomes = run_plan(plan)
    assert [o.status for o in outcomes] == ["finished"] * 3  # base, narrow, wide
    assert (folder / "notes.txt").read_text() == "a user's file, not ganforge's"
    assert (folder / "done.json").exists()


def test_a_second_sweep_in_the_same_directory_is_refused(plugins, tiny_recipe: Path,
                                                         tmp_path: Path) -> None:
    plan = plan_sweep(sweep_file(tmp_path, tiny_recipe), plugins.registry,
                      out=tmp_path / "sweep")
    with lock_sweep(plan.out), pytest.raises(
            RunDirectoryBusy, match=rf"sweep directory {plan.out} is in use by process "
                                    rf"{os.getpid()}"):
        run_plan(plan)
    assert not any(r.run_dir.exists() for r in plan.runs)


def test_a_rerun_is_refused_while_orphaned_workers_still_run(plugins, tiny_recipe: Path,
                                                             tmp_path: Path) -> None:
    plan = plan_sweep(sweep_file(tmp_path, tiny_recipe), plugins.registry,
                      out=tmp_path / "sweep")
    plan.out.mkdir(parents=True)
    fd = os.open(plan.out / WORKERS_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what a live worker of an earlier sweep holds
    try:
        with pytest.raises(RunDirectoryBusy, match="worker processes of an earlier"):
            run_plan(plan)
    finally:
        os.close(fd)
    assert [o.status for o in run_plan(plan)] == ["finished"] * 3


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not reaped it


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_workers_end_with_their_parent(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = sweep_file(tmp_path, tiny_recipe,
                        "[run]\nsteps = 100000000\ncheckpoint_every = 1\n")
    out = tmp_path / "sweep"
    log = tmp_path / "ablate.log"  # a file, not a pipe: the workers inherit it
    parent = subprocess.Popen([sys.executable, "-m", "ganforge", "ablate", str(recipe),
                               "--out", str(out), "--jobs", "2"],
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))

    def started() -> list[Path]:
        """The run folders of workers that wrote a checkpoint (any step: rotation deletes
        the early ones while the other worker catches up)."""
        return sorted({p.parent.parent
                       for p in out.glob("*/seed-0/checkpoints/step-*.safetensors")})

    try:
        wait_for(lambda: parent.poll() is not None or len(started()) == 2,
                 "both workers' first checkpoints")
        assert parent.poll() is None, log.read_text()
        locks = [folder / ".lock" for folder in started()]
        workers = [int(p.read_text()) for p in locks]
        assert all(alive(pid) for pid in workers) and parent.pid not in workers
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), "the orphaned workers to end")
    # They stopped cleanly (SIGTERM): a complete checkpoint, no leftover temporaries.
    for lock in locks:
        assert any((lock.parent / "checkpoints").glob("step-*.safetensors"))


def test_a_finished_runs_device_goes_to_the_next_run(plugins, tiny_recipe: Path,
                                                      tmp_path: Path, monkeypatch) -> None:
    """With two GPUs, when the second run finishes first, the third run gets the second
    run's GPU, not the first one's (still busy). Processes are replaced by threads, and
    the order of finishing is set by events, not by timing."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from ganforge.sweep import runner

    class Threads(ThreadPoolExecutor):
        def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()):
            super().__init__(max_workers=max_workers)

    first_may_finish = threading.Event()
    devices: dict[str, str] = {}

    def fake_train(recipe_toml, run_dir, device, threads):
        name = Path(run_dir).parent.name
        devices[name] = device
        if name == "base":
            assert first_may_finish.wait(timeout=DEADLINE_S)  # busy until the third starts
        if name == "wide":
            first_may_finish.set()
        return 0.0

    monkeypatch.setattr(runner, "ProcessPoolExecutor", Threads)
    monkeypatch.setattr(runner, "_devices", lambda jobs: ["cuda:0", "cuda:1"])
    monkeypatch.setattr(runner, "_train_one", fake_train)
    plan = plan_sweep(sweep_file(tmp_path, tiny_recipe), plugins.registry,
                      out=tmp_path / "sweep")
    assert [r.run_dir.parent.name for r in plan.runs] == ["base", "narrow", "wide"]
    outcomes = run_plan(plan, jobs=2)
    assert sorted(o.status for o in outcomes) == ["finished"] * 3
    assert devices == {"base": "cuda:0", "narrow": "cuda:1", "wide": "cuda:1"}
