"""Stop signals and loader workers (issue 23, item 10): ``data prepare`` stopped by SIGTERM
or Ctrl-C prints one line, keeps its finished shards and leaves no worker behind; loader
workers die with their parent (a SIGKILLed trainer leaves neither a worker nor a traceback
from one in its log). Every wait here waits on an event (a file, a process gone) with a
generous bound, never on a fixed sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ganforge.core.errors import Interrupted
from ganforge.datasets.worker_signals import stop_signals_interrupt

linux_only = pytest.mark.skipif(not Path("/proc/self/task").exists() or
                                not hasattr(signal, "sigwaitinfo"),
                                reason="needs Linux (/proc, prctl, sigwaitinfo)")


def wait_for(condition, what: str, bound: float = 120.0) -> None:
    """Poll ``condition`` until it holds; ``bound`` only turns a hang into a failure."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(p) for p in text.split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_stop_signal_is_raised_where_the_code_checks_it() -> None:
    with stop_signals_interrupt() as stop:
        stop.raise_if_requested()  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: stop.signum is not None, "the handler")
        with pytest.raises(Interrupted) as interrupted:
            stop.raise_if_requested()
    assert interrupted.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_second_stop_signal_ends_the_process_in_one_line() -> None:
    script = textwrap.dedent("""
        import os, signal
        from ganforge.datasets.worker_signals import stop_signals_interrupt
        with stop_signals_interrupt() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            while stop.signum is None:
                pass
            os.kill(os.getpid(), signal.SIGTERM)  # the handler exits the process
            while True:
                pass
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr == "interrupted: aborted by a second SIGTERM\n"


@linux_only
def test_loader_workers_are_killed_with_their_parent(tmp_path) -> None:
    """A process holding loader workers (ganforge's worker init) is SIGKILLed: its workers
    go with it at once instead of at PyTorch's next watchdog check."""
    script = textwrap.dedent(f"""
        import sys, torch
        from torch.utils.data import DataLoader
        from ganforge.datasets.worker_signals import parent_death_signal
        from ganforge.training.data import seed_worker

        class Slow(torch.utils.data.Dataset):
            def __len__(self): return 10**6
            def __getitem__(self, i):
                return parent_death_signal()

        batches = iter(DataLoader(Slow(), batch_size=1, num_workers=2,
                                  worker_init_fn=seed_worker))
        print(int(next(batches)[0]), flush=True)  # the workers' parent-death signal
        open({str(tmp_path / "ready")!r}, "w").close()
        sys.stdin.read()  # hold the workers until killed
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None,
                 "the workers to start")
        assert proc.poll() is None, proc.communicate()[1]
        workers = children(proc.pid)
        assert len(workers) >= 2
        proc.kill()
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert int(out.split()[0]) == signal.SIGKILL
    wait_for(lambda: not any(alive(w) for w in workers), "the workers to end")
    assert "Traceback" not in err


@linux_only
def test_sigterm_stops_data_prepare_in_one_line_keeping_its_shards(tmp_path) -> None:
    out = tmp_path / "prepared"
    log = (tmp_path / "stderr.txt").open("w+")  # a file, not a pipe nobody reads yet
    # Far more images than are decoded before the signal: the run is stopped mid-way.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganforge", "data", "prepare", "synthetic", "--out", str(out),
         "--set", "count=2000000", "--set", "image_size=8",
         "--workers", "2", "--shard-size", "256"],
        stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        wait_for(lambda: (out / "shard-00000.json").exists() or proc.poll() is not None,
                 "the first shard")
        assert proc.poll() is None, Path(log.name).read_text()
        workers = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    err = Path(log.name).read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "Error" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted (SIGTERM)"
    assert (out / "shard-00000.npy").exists()  # finished shards stay: a rerun resumes
    wait_for(lambda: not any(alive(w) for w in workers), "the workers to end")
