"""The run directory as its one owner keeps it: one process at a time (an OS lock that dies
with its holder), logs that survive a torn last line, a full disk named, a ``--resume``
that works on the first launch and on every requeue, and exact logged means after one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganforge.errors import CheckpointError, RunDirectoryBusy, StorageError, UsageError
from ganforge.files import read_jsonl, temporary_path, write_text_atomic
from ganforge.recipe import load_recipe
from ganforge.training import RunDirectory, train

DEADLINE_S = 180  # only a bound for a broken build; every wait below ends on an event


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from ganforge.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def run(plugins, recipe_path: Path, out: Path, *overrides: str, resume: bool = False):
    recipe = load_recipe(recipe_path, plugins.registry, overrides)
    return train(recipe, plugins, out, resume=resume, progress=False)


def wait_for(condition, what: str) -> None:
    """Poll ``condition`` until it holds (an event in another process), failing only
    after :data:`DEADLINE_S`."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cli_process(recipe: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganforge", "run", str(recipe), "--out",
                             str(out), "--quiet", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# -- one process per run directory --------------------------------------------------------

def test_a_second_run_in_a_locked_directory_is_refused(plugins, tiny_recipe: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunDirectory(out).lock():
        with pytest.raises(RunDirectoryBusy, match=rf"run directory {out} is in use by "
                                                   rf"process {os.getpid()}"):
            run(plugins, tiny_recipe, out)
        with pytest.raises(RunDirectoryBusy):
            run(plugins, tiny_recipe, out, resume=True)
    assert not (out / "recipe.toml").exists()  # the refused runs wrote nothing
    assert run(plugins, tiny_recipe, out, "run.steps=1").step == 1  # released on exit


def test_two_processes_never_share_a_run_and_a_killed_one_leaves_no_lock(
        tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = cli_process(tiny_recipe, out, "--set", "run.steps=100000000",
                        "--set", "run.checkpoint_every=1")
    try:
        wait_for(lambda: (out / "checkpoints" / "step-0000001.safetensors").exists(),
                 "the first run's first checkpoint")
        second = subprocess.run([sys.executable, "-m", "ganforge", "run", str(tiny_recipe),
                                 "--out", str(out), "--resume", "--quiet"],
                                capture_output=True, text=True, timeout=DEADLINE_S)
        assert second.returncode == 2, second.stderr
        assert f"is in use by process {first.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.communicate()
    # The lock died with its holder: a requeue resumes at once.
    third = subprocess.run([sys.executable, "-m", "ganforge", "run", str(tiny_recipe),
                            "--out", str(out), "--resume", "--quiet", "--set",
                            "run.steps=1"],
                           capture_output=True, text=True, timeout=DEADLINE_S)
    assert third.returncode == 0, third.stderr


def test_temporary_names_are_unique_per_writer_and_stale_ones_are_cleared(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    target = tmp_path / "written" / "recipe.toml"
    target.parent.mkdir()
    assert temporary_path(target) != temporary_path(target)
    write_text_atomic(target, "x = 1\n")
    assert target.read_text() == "x = 1\n"
    assert [p.name for p in target.parent.iterdir()] == ["recipe.toml"]
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "run.steps=3")
    stale = [out / ".recipe.toml.4242.deadbeef.tmp",
             out / "checkpoints" / ".step-0000004.safetensors.4242.deadbeef.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    users = out / ".notes.tmp"  # a user's file with a temporary-looking name
    users.write_text("mine")
    run(plugins, tiny_recipe, out, "run.steps=4", resume=True)
    assert not any(p.exists() for p in stale)
    assert users.read_text() == "mine"  # not a name ganforge writes: never deleted


# -- requeue-safe --resume -----------------------------------------------------------------

def test_resume_after_a_kill_before_the_first_checkpoint(plugins, tiny_recipe: Path,
                                                         tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "run.steps=3")
    for checkpoint in (out / "checkpoints").iterdir():
        checkpoint.unlink()  # as if killed before the first checkpoint
    with pytest.raises(UsageError, match="already holds a run; pass --resume"):
        run(plugins, tiny_recipe, out)
    result = run(plugins, tiny_recipe, out, resume=True)
    assert result.step == 6
    assert "starting at step 0" in capsys.readouterr().err
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl").records]
    assert steps == [2, 4, 6]  # the logs of the killed attempt are gone


def test_resume_without_a_checkpoint_refuses_another_recipe(plugins, tiny_recipe: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "run.steps=3")
    for checkpoint in (out / "checkpoints").iterdir():
        checkpoint.unlink()
    before = (out / "recipe.toml").read_text()
    with pytest.raises(UsageError, match=r"holds a run of another recipe \(generator differ\)"):
        run(plugins, tiny_recipe, out, "generator.width=8", resume=True)
    assert (out / "recipe.toml").read_text() == before


# -- torn logs and full disks --------------------------------------------------------------

@pytest.mark.parametrize("tail", [b'{"step": 5, "loss_d": 0.6', b"\x00" * 40,
                                  b'{"step": 5}\n\x00\x00\x00'])
def test_a_torn_last_line_is_dropped_on_resume(plugins, tiny_recipe: Path, tmp_path: Path,
                                               capsys, tail: bytes) -> None:
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "run.steps=3", "run.log_every=1")
    for log in ("metrics.jsonl", "skipped.jsonl"):
        with open(out / log, "ab") as f:
            f.write(tail)
    result = run(plugins, tiny_recipe, out, "run.log_every=1", resume=True)
    assert result.step == 6
    assert "dropped a torn last line" in capsys.readouterr().err
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl").records]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert b"\x00" not in (out / "skipped.jsonl").read_bytes()


def test_damage_inside_a_log_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(StorageError, match=rf"{path}: line 2 is not a JSON object"):
        read_jsonl(path)
    path.write_text('{"step": 1}\n{"step": 2, "lo')
    log = read_jsonl(path)
    assert log.records == [{"step": 1}] and log.torn_bytes == len('{"step": 2, "lo')


def test_sweep_results_survive_a_torn_metrics_line(tmp_path: Path) -> None:
    from ganforge.sweep.results import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "loss_d": 1.0}\n{"step": 4, "lo')
    assert read_metrics(tmp_path) == [{"step": 2, "loss_d": 1.0}]


def test_a_full_disk_names_the_file(cli, plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    # A run directory awaiting its first checkpoint (a folder of other files is refused).
    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.toml").write_text(load_recipe(tiny_recipe, plugins.registry).to_toml())
    (out / "metrics.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    result = cli("run", tiny_recipe, "--out", out, "--resume")
    assert result.exit_code == 1
    assert f"error: cannot write {out / 'metrics.jsonl'}: No space left on device" \
        in result.output
    assert "internal error" not in result.output


def test_an_unwritable_run_directory_is_one_line(cli, tiny_recipe: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = cli("run", tiny_recipe, "--out", tmp_path / "file" / "run")
    assert result.exit_code == 1
    assert "error: cannot write" in result.output and "Not a directory" in result.output
    assert len(result.output.strip().splitlines()) == 1


# -- exactness after a resume ----------------------------------------------------------------

def test_logged_means_after_a_resume_equal_the_uninterrupted_runs(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    settings = ("run.log_every=4", "run.checkpoint_every=3")
    run(plugins, tiny_recipe, tmp_path / "a", *settings)
    run(plugins, tiny_recipe, tmp_path / "b", *settings)
    (tmp_path / "b" / "checkpoints" / "step-0000006.safetensors").unlink()  # killed at 5
    run(plugins, tiny_recipe, tmp_path / "b", *settings, resume=True)
    logs = [[{k: r[k] for k in ("step", "loss_d", "loss_g")}
             for r in read_jsonl(tmp_path / name / "metrics.jsonl").records]
            for name in ("a", "b")]
    assert [r["step"] for r in logs[0]] == [4, 6]
    assert logs[0] == logs[1]  # the mean at step 4 covers steps 1-4 in both


def test_resume_says_when_the_thread_count_changed(plugins, tiny_recipe: Path,
                                                   tmp_path: Path, capsys) -> None:
    threads = torch.get_num_threads()
    out = tmp_path / "run"
    try:
        torch.set_num_threads(1)
        run(plugins, tiny_recipe, out, "run.steps=3")
        torch.set_num_threads(2)
        run(plugins, tiny_recipe, out, "run.steps=4", resume=True)
    finally:
        torch.set_num_threads(threads)
    assert ("resume is not bit-exact: the checkpoint was trained with 1 CPU threads, this "
            "process uses 2") in capsys.readouterr().err


def test_resume_refuses_another_precision(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "run.steps=3", "run.precision=fp32")
    with pytest.raises(CheckpointError, match=r"\(run.precision differ\)"):
        run(plugins, tiny_recipe, out, "run.precision=bf16", resume=True)


# -- stop signals --------------------------------------------------------------------------

def test_a_second_sigterm_aborts_with_143(cli, tiny_recipe: Path, tmp_path: Path,
                                          monkeypatch) -> None:
    from ganforge.errors import Aborted
    from ganforge.training.stopping import StopRequest

    stop = StopRequest()
    stop._handle(signal.SIGTERM, None)
    with pytest.raises(Aborted) as caught:
        stop._handle(signal.SIGTERM, None)
    assert caught.value.signum == signal.SIGTERM

    import ganforge.training as training

    def aborted(*args, **kwargs):
        raise caught.value

    monkeypatch.setattr(training, "train", aborted)
    result = cli("run", tiny_recipe, "--out", tmp_path / "run")
    assert result.exit_code == 143
    assert "aborted by a second SIGTERM" in result.output


def test_sigterm_during_an_evaluation_stops_it_and_writes_the_checkpoint(
        plugins, tiny_recipe: Path, tmp_path: Path, monkeypatch) -> None:
    from ganforge.evaluation import features

    calls = []
    pixels = features.PixelExtractor.__call__

    def signalled(self, images):
        calls.append(images.shape[0])
        if len(calls) == 1:
            signal.raise_signal(signal.SIGTERM)  # the scheduler's SIGTERM, mid-evaluation
        return pixels(self, images)

    monkeypatch.setattr(features.PixelExtractor, "__call__", signalled)
    out = tmp_path / "run"
    result = run(plugins, tiny_recipe, out, "run.checkpoint_every=100",
                 "eval.every=2", "eval.metrics.fid.use=fid",
                 "eval.metrics.fid.extractor=pixels", "eval.metrics.fid.n_fake=64",
                 "eval.metrics.fid.n_real=32", "eval.metrics.fid.batch_size=4")
    assert result.interrupted and result.stop_signal == signal.SIGTERM
    assert result.step == 2 and result.checkpoint.name == "step-0000002.safetensors"
    assert len(calls) == 1  # the next batch saw the stop request: 24 batches not computed
    logged = read_jsonl(out / "metrics.jsonl").records
    assert not any("eval/fid" in r for r in logged)
