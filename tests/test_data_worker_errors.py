"""A ganforge error raised in a data-loader worker reaches the user as its own one line
(naming the image), with its own type, not as the worker's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets.decoding import BadImage
from ganforge.datasets.prepared import prepare_dataset
from ganforge.datasets.worker_errors import WorkerErrorsUnwrapped, unwrap_worker_error
from ganforge.errors import DataError
from ganforge.training.data import real_batches, shutdown_workers
from tests.lsun_data import make_lsun

ROOT = Path(__file__).parent.parent
ONE_BAD_IMAGE = r"^bedroom_train:zz-bad-[a-z-]+: [^\n]+$"


class Raising(torch.utils.data.Dataset):
    """Item 0 is fine; item 1 raises ``error`` (chained to another exception, as an error
    raised while handling one is)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 0:
            return torch.zeros(1)
        try:
            raise OSError("the cause")
        except OSError:
            raise self.error  # noqa: B904 (the chain is the point)


def worker_error(error: Exception) -> Exception:
    """What iterating a one-worker loader over :class:`Raising` raises, unwrapped."""
    loader = torch.utils.data.DataLoader(Raising(error), batch_size=1, num_workers=1)
    with pytest.raises(type(error)) as info:
        list(WorkerErrorsUnwrapped(loader))
    return info.value


def test_a_bad_image_in_a_worker_stops_the_run_with_one_line(tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", webp=4, jpeg=4)
    result = CliRunner().invoke(app, [
        "run", str(ROOT / "recipes" / "dcgan_lsun.toml"), "--out", str(tmp_path / "run"),
        "--quiet", "--set", f"dataset.root={tmp_path / 'lsun'}", "--set", "run.steps=3",
        "--set", "run.batch_size=11", "--set", "run.num_workers=2",
        "--set", "generator.width=4", "--set", "discriminator.width=4"])
    assert result.exit_code == 1
    assert result.output.startswith("error: bedroom_train:zz-bad-"), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_real_batches_keep_the_type_and_message(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, webp=2, jpeg=2)  # 7 images, 3 of them bad: every batch of 7 fails
    dataset = plugins.registry.create("dataset", "lsun", {"root": str(tmp_path),
                                                          "image_size": 32})
    batches = real_batches(dataset, 7, 0, 0, num_workers=1, device=torch.device("cpu"),
                           pin_memory=False)
    workers = batches._workers
    with pytest.raises(BadImage, match=ONE_BAD_IMAGE) as info:
        next(batches)
    # The worker's traceback is kept for --debug, as the cause the one line leaves out.
    assert "DataLoader worker process 0" in str(info.value.__cause__)
    shutdown_workers(batches)  # still reaches the loader's workers through the wrapper
    assert not any(w.is_alive() for w in workers)


def test_a_message_of_several_lines_comes_back_whole() -> None:
    error = worker_error(DataError("first line\nsecond line"))
    assert type(error) is DataError and str(error) == "first line\nsecond line"


def test_the_original_is_found_after_a_chained_cause() -> None:
    error = worker_error(BadImage("cat.png: cannot decode image: broken"))
    assert str(error) == "cat.png: cannot decode image: broken"
    assert "OSError: the cause" in str(error.__cause__)


def test_an_error_raised_in_this_process_is_left_alone() -> None:
    error = DataError("Caught nothing: a message that only looks like one")
    assert unwrap_worker_error(error) is error
    assert str(error) == "Caught nothing: a message that only looks like one"
    assert error.__cause__ is None


def test_prepare_with_workers_reports_the_bad_image_in_one_line(plugins,
                                                                tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", webp=2, jpeg=2)
    dataset = plugins.registry.create("dataset", "lsun", {"root": str(tmp_path / "lsun"),
                                                          "image_size": 32})
    with pytest.raises(BadImage, match=ONE_BAD_IMAGE):
        prepare_dataset(dataset, {"use": "lsun"}, tmp_path / "prepared", workers=1,
                        progress=False)


def test_more_workers_than_cores_gives_no_pytorch_paragraph(plugins, recwarn) -> None:
    """The recipe layer notes it in one line (Recipe.notes); PyTorch's warning is silenced."""
    import os

    import torch

    from ganforge.training.data import real_batches, shutdown_workers

    dataset = plugins.registry.create("dataset", "synthetic",
                                      {"count": 64, "image_size": 8, "channels": 1})
    workers = len(os.sched_getaffinity(0)) + 1
    batches = real_batches(dataset, 8, 0, 0, num_workers=workers,
                           device=torch.device("cpu"), pin_memory=False)
    try:
        assert next(batches).images.shape == (8, 1, 8, 8)
    finally:
        shutdown_workers(batches)
    assert not [w for w in recwarn if "This DataLoader will create" in str(w.message)]


def test_a_worker_killed_by_a_signal_is_one_line(plugins) -> None:
    """A worker that dies (a bus error on a damaged file, the OOM killer) ends the run
    with one line, not PyTorch's paragraph and an internal error."""
    import os
    import signal

    import torch

    from ganforge.errors import DataError
    from ganforge.training.data import real_batches, shutdown_workers

    dataset = plugins.registry.create("dataset", "synthetic",
                                      {"count": 64, "image_size": 8, "channels": 1})
    batches = real_batches(dataset, 8, 0, 0, num_workers=1, device=torch.device("cpu"),
                           pin_memory=False, persistent_workers=False)
    try:
        next(batches)
        worker = batches._workers[0]
        handler = signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # only the check below reports
        try:
            os.kill(worker.pid, signal.SIGKILL)
            os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)  # it has ended
            with pytest.raises(DataError, match="exited unexpectedly: a data-loader worker "
                                                "died while reading the dataset") as caught:
                for _ in range(100):  # past the prefetched batches
                    next(batches)
            assert len(str(caught.value).splitlines()) == 1
        finally:
            signal.signal(signal.SIGCHLD, handler)
    finally:
        shutdown_workers(batches)
