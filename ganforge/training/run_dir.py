"""The run directory (see DESIGN.md): its file names, and the lock that makes one process
its only writer."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import weakref
from pathlib import Path

import attrs

from ..core.errors import RunDirectoryBusy
from ..io.checkpoint_names import checkpoint_name, latest_checkpoint, rotate
from ..io.files import TEMPORARY_SUFFIX, writing

#: The lock file inside a locked folder; it holds the holder's PID (for the message only:
#: the lock itself is the kernel's, released when the holder dies).
LOCK_FILE = ".lock"


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock``, held until :meth:`release` or the
    process's death: a killed process never leaves a stale lock behind.

    Refused while another live process holds it, with one line naming the folder and the
    holder's PID. The lock file is never deleted (deleting it would let a third process
    lock a new file while the second still holds the old one).
    """

    def __init__(self, folder: Path, what: str = "run directory") -> None:
        self.folder = folder
        self.what = what
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    def acquire(self) -> FolderLock:
        with writing(self.path):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            with writing(self.path):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    raise RunDirectoryBusy(
                        f"{self.what} {self.folder} is in use by process {holder or 'unknown'} "
                        "(one process per directory; wait for it to end or use another "
                        "--out)") from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)  # never leave the lock held by a descriptor nobody will close
            raise
        self._fd = fd
        # A forked child (a data-loader worker) would share the lock and keep it held after
        # this process dies; children drop their copy at once.
        os.register_at_fork(after_in_child=functools.partial(_drop_in_child, weakref.ref(self)))
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


#: Temporary names ganforge writes (``files.temporary_path``), and the older fixed form.
_GANFORGE_TEMPORARY = re.compile(r"\..+\.[0-9]+\.[0-9a-f]{8}\.tmp|\.(step-[0-9]+\.safetensors|"
                                 r"recipe\.toml)\.tmp")


def _drop_in_child(lock: weakref.ref[FolderLock]) -> None:
    held = lock()
    if held is not None:
        held.release()


@attrs.frozen
class RunDirectory:
    """Paths inside ``runs/<name>/``; :meth:`lock` makes this process its only writer."""

    root: Path

    @property
    def recipe(self) -> Path:
        """The resolved recipe, one flat TOML file."""
        return self.root / "recipe.toml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def metrics(self) -> Path:
        """One JSON object per logged step."""
        return self.root / "metrics.jsonl"

    @property
    def skipped(self) -> Path:
        """Images skipped under ``on_error = "skip"``, one JSON object each."""
        return self.root / "skipped.jsonl"

    @property
    def evaluations(self) -> Path:
        """One JSON object per score computed during training, with its full protocol."""
        return self.root / "evaluations.jsonl"

    @property
    def rollbacks(self) -> Path:
        """One JSON object per rollback after a divergence."""
        return self.root / "rollbacks.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    def checkpoint_path(self, step: int) -> Path:
        """The rotating checkpoint of ``step``: ``checkpoints/step-0001000.safetensors``."""
        return self.checkpoints / checkpoint_name(step)

    def best_checkpoint(self, label: str) -> Path:
        """The checkpoint of the best evaluation of metric ``label`` (outside rotation)."""
        return self.checkpoints / f"best-{label}.safetensors"

    def latest_checkpoint(self) -> Path | None:
        """The newest complete, readable ``step-N`` checkpoint, or None."""
        return latest_checkpoint(self.checkpoints)

    def rotate_checkpoints(self, keep_last: int, protect: tuple[Path, ...] = ()) -> list[Path]:
        """Delete all but the newest ``keep_last`` ``step-N`` checkpoints (never one in
        ``protect``, never ``best-*``)."""
        return rotate(self.checkpoints, keep_last, protect)

    def has_run(self) -> bool:
        """True when something a run writes is already here."""
        return self.recipe.exists() or (
            self.checkpoints.is_dir() and any(self.checkpoints.glob("*.safetensors")))

    def foreign_entry(self) -> Path | None:
        """The first entry (in name order) that no ganforge run put here, in a folder that
        holds no run: training here would overwrite a user's files named like a run's
        (``metrics.jsonl``, ``samples/step-*.png``). None for a missing or empty folder, or
        one holding only ganforge's lock, its temporaries and the empty folders
        :meth:`create` makes (what a launch that failed before writing ``recipe.toml``
        leaves behind)."""
        if not self.root.is_dir():
            return None
        own = {self.checkpoints.name, self.samples.name, self.tensorboard.name}
        with writing(self.root):
            for entry in sorted(self.root.iterdir()):
                if entry.name == LOCK_FILE or _GANFORGE_TEMPORARY.fullmatch(entry.name):
                    continue
                if entry.name not in own or entry.is_symlink() or not entry.is_dir():
                    return entry
                inside = sorted(e for e in entry.iterdir()
                                if not _GANFORGE_TEMPORARY.fullmatch(e.name))
                if inside:
                    return inside[0]
        return None

    def create(self) -> None:
        with writing(self.root):
            for folder in (self.root, self.checkpoints, self.samples, self.tensorboard):
                folder.mkdir(parents=True, exist_ok=True)

    def lock(self) -> FolderLock:
        """The run's lock (a context manager); hold it for the whole life of the run."""
        return FolderLock(self.root, "run directory")

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files that killed writes left here (call it only while
        holding :meth:`lock`: then no live writer owns any of them)."""
        removed = []
        for folder in (self.root, self.checkpoints):
            if not folder.is_dir():
                continue
            for stale in folder.glob(f".*{TEMPORARY_SUFFIX}"):
                if not _GANFORGE_TEMPORARY.fullmatch(stale.name):
                    continue  # not a name ganforge writes: not ours to delete
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
                    removed.append(stale)
        return removed

