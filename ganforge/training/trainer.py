"""The trainer: a short loop over the public training step, with periodic work done by
callbacks on the steps where it is due. It is written against the component interfaces
and knows no model by name.

Data flows one way: recipe -> registry -> :func:`~ganforge.training.assembly.assemble` ->
:class:`~ganforge.training.step.GANStep` + :mod:`~ganforge.training.callbacks` -> the run
directory (:class:`~ganforge.training.run_dir.RunDirectory`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from .._version import __version__
from ..core.callback import Callback
from ..core.errors import TrainingError, UsageError
from ..core.interfaces import is_conditional
from ..core.seeds import derive_seed
from ..datasets.policy import ImageBatch
from ..io.checkpoint_files import write_checkpoint
from ..io.files import write_text_atomic, writing
from ..plugins import Plugins
from ..recipe import Recipe
from ..sampling import (
    class_grid_inputs,
    columns_for,
    generate,
    grid_classes,
    image_grid,
    write_grid,
)
from .assembly import Experiment, assemble, resolve_device
from .callbacks import LossMeter, RunContext, run_callbacks
from .data import real_batches, shutdown_workers
from .distributed import init_distributed, is_main_process
from .divergence import DivergenceWatch
from .metrics_log import JsonlWriter, MetricsLog
from .progress import TrainingProgress
from .resume import capture_state, grad_scaler_states, refuse_another_recipe, restore_state
from .resume_point import resume_checkpoint
from .run_dir import RunDirectory
from .shape_check import check_network_shapes
from .step import GANStep, forward_module
from .step_graph import build_step
from .stopping import StopRequest


@attrs.frozen
class TrainResult:
    """What a finished (or cleanly interrupted) run left behind."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    interrupted: bool
    last_metrics: dict[str, float]
    #: Bad images skipped in this session (listed in ``skipped.jsonl``).
    skipped_images: int = 0
    #: The signal that stopped the run (SIGINT or SIGTERM), when ``interrupted``.
    stop_signal: int | None = None
    #: Why a callback ended the run early (``ctx.request_stop``), else None.
    stopped_by: str | None = None


class Trainer:
    """Trains one recipe in one run directory. Create, optionally :meth:`restore`, then
    :meth:`fit`. ``notify(hook, **kwargs)`` broadcasts observer hooks (default: the
    plugins'); ``callbacks`` run after the built-in periodic work (``docs/callbacks.md``)."""

    def __init__(self, recipe: Recipe, plugins: Plugins, run_dir: str | Path, *,
                 progress: bool = True,
                 notify: Callable[..., Any] | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.recipe = recipe
        self.registry = plugins.registry
        loaded = [r for r in plugins.records if r.status == "loaded" and r.version]
        self.plugin_versions = {r.distribution: r.version for r in loaded}
        # Which distribution made each plugin's components: a checkpoint whose plugin is
        # missing elsewhere then says what to install.
        self.plugin_versions.update({f"plugin:{r.name}": f"{r.distribution} {r.version}"
                                     for r in loaded if r.name != "builtins"})
        self._broadcast = notify if notify is not None else plugins.broadcast
        self.dirs = RunDirectory(Path(run_dir))
        self.show_progress = progress
        run = recipe.run
        self.dist = init_distributed(run.device)
        device = resolve_device(run.device)
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        # G's images must fit D: one line naming both shapes, not an error deep in D.
        check_network_shapes(recipe, self.registry)
        self.experiment: Experiment = assemble(recipe, self.registry, device)
        # Each process draws its own latents (rank 0: exactly the single-process stream).
        self.latent_rng = torch.Generator(device=self.device).manual_seed(
            derive_seed(run.seed, "latents", self.dist.rank))
        self.fixed_z, self.fixed_labels, self.grid_columns = self._fixed_grid_inputs()
        forward = functools.partial(forward_module, run=run, speed=self.speed, dist=self.dist,
                                    device=self.device)
        # run.graph = "step": the whole step as one compiled graph (refused where it
        # cannot work yet, with one line); else the eager or per-network compiled step.
        self.train_step: GANStep = build_step(
            self.experiment, self.latent_rng, forward_g=forward(self.generator),
            forward_d=forward(self.discriminator), watch=DivergenceWatch(self.device),
            dist=self.dist)
        self.losses = LossMeter(self.device)
        #: Rollbacks after a divergence (``run.on_divergence = "rollback"``).
        self.rollbacks = 0
        self.step = 0
        #: Real batches drawn so far: where a resumed run's data order continues.
        self.batches_seen = 0
        #: ``{"label", "value", "step"}`` of the best evaluation so far, or None.
        self.best: dict[str, Any] | None = None
        #: The metrics of the last log step (and evaluation).
        self.metrics: dict[str, float] = {}
        #: What the callbacks logged on the current step: sent to ``ganforge_log`` once.
        self.logged: dict[str, float] = {}
        #: Images skipped under ``on_error = "skip"`` in this session.
        self.skipped_count = 0
        #: One-line notes for the user, shown when :meth:`fit` starts (rank 0).
        self.notes: list[str] = []
        #: The metrics log, opened by ``fit`` (rank 0); nothing is written before that.
        self.log: Any = _NullLog()
        self.stop_requested: Callable[[], bool] = lambda: False
        self._elapsed_before = 0.0
        self._session_start: float | None = None
        self._last_checkpoint: Path | None = None
        #: Every callback of the run, and the context they are given (never the trainer).
        self.callbacks = run_callbacks(recipe, self.registry, callbacks)
        self.context = RunContext(self)

    # The assembled parts, by the names the rest of the trainer uses.
    generator = property(lambda self: self.experiment.generator)
    discriminator = property(lambda self: self.experiment.discriminator)
    dataset = property(lambda self: self.experiment.dataset)
    device = property(lambda self: self.experiment.device)
    speed = property(lambda self: self.experiment.speed)
    opt_g = property(lambda self: self.experiment.optimizers["generator"])
    opt_d = property(lambda self: self.experiment.optimizers["discriminator"])

    @property
    def sampling_generator(self) -> Any:
        """What sample grids and evaluations use: the EMA of G when kept, else G."""
        return self.experiment.sampling_generator

    def _fixed_grid_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
        """The fixed latents (and, for a conditional G, labels) of every sample grid: about
        ``run.sample_count`` images, one row per class with the same latents in every row
        when G is conditional; and the images per grid row (None: near-square)."""
        run = self.recipe.run
        rng = torch.Generator().manual_seed(derive_seed(run.seed, "sample grid"))
        if not is_conditional(self.generator):
            z = self.generator.sample_latent(run.sample_count, rng, "cpu")
            return z.to(self.device), None, None
        rows = grid_classes(self.experiment.classes, run.sample_count)
        columns = columns_for(run.sample_count, len(rows))
        z, labels = class_grid_inputs(self.generator.sample_latent(columns, rng, "cpu"), rows)
        return z.to(self.device), labels.to(self.device), columns

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Broadcast an observer hook (from rank 0 only under torchrun)."""
        if self.dist.is_main:
            self._broadcast(hook, **kwargs)

    # -- the loop ---------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train from the current step to ``run.steps``, running the callbacks on the steps
        where they are due. Ctrl-C or SIGTERM stops after the current step with a checkpoint
        (a second one aborts at once); see ``stopping.py``. So does a callback's
        ``ctx.request_stop``."""
        run, start, stop, ctx = self.recipe.run, self.step, StopRequest(), self.context
        with contextlib.ExitStack() as stack:
            self._open_outputs(stack, start)
            next_real = functools.partial(self.next_real, self._real_batches(stack))
            stack.enter_context(stop)
            self.stop_requested = lambda: stop.requested
            progress = TrainingProgress(run.steps, start,
                                        enabled=self.show_progress and self.dist.is_main)
            ctx.begin(stack, progress, stop)
            self.callbacks.start(ctx)
            stack.enter_context(progress)
            self._session_start = time.perf_counter()
            for message in self.notes if self.dist.is_main else ():
                progress.warn(message)
            if ctx.stop_asked:  # asked before any step (the same on every rank: restored)
                ctx.agree_stop(None)
            while self.step < run.steps and not ctx.stopping:
                self.experiment.on_step(self.step + 1)
                self.train_step.train(next_real, self.step + 1, self.losses)
                self.step += 1
                progress.advance(self.step)
                self.callbacks.step_end(ctx, self.step, self.step == run.steps)
            if (stop.requested or ctx.stopping) and self.step > start and (
                    self._last_checkpoint != self.dirs.checkpoint_path(self.step)):
                what = "interrupted" if stop.requested else f"stopped ({ctx.stop_reason})"
                progress.note(f"{what}: checkpoint {self.save_checkpoint()} written")
            elif ctx.stopping and not stop.requested:
                progress.note(f"stopped at step {self.step}: {ctx.stop_reason}")
            self.callbacks.end(ctx, stop.requested)
        return TrainResult(self.dirs.root, self.step,
                           self._last_checkpoint or self.dirs.latest_checkpoint(),
                           stop.requested, self.metrics, self.skipped_count, stop.signum,
                           ctx.stop_reason if ctx.stopping and not stop.requested else None)

    def next_real(self, batches: Iterator[ImageBatch]
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next batch of real images (and their labels, None for an unlabelled dataset)
        on the device, augmented; skipped images recorded."""
        while True:
            batch = next(batches)
            self.batches_seen += 1
            for item in batch.skipped:
                self._skipped.write({"step": self.step + 1, "key": item.key,
                                     "reason": item.reason})
            self.skipped_count += len(batch.skipped)
            if batch.images.shape[0]:
                real = batch.images.to(self.device, non_blocking=True)
                real = self.dataset.augment(real, self.latent_rng)
                labels = batch.labels
                if labels is not None:
                    labels = labels.to(self.device, non_blocking=True)
                return real.contiguous(memory_format=self.speed.memory_format), labels

    def _open_outputs(self, stack: contextlib.ExitStack, start: int) -> None:
        """Open the metrics log and ``skipped.jsonl`` (rank 0; other ranks write nothing),
        closed by ``stack`` however ``fit`` ends."""
        if self.dist.is_main:
            self.dirs.create()
            self.log = MetricsLog(self.dirs.metrics, self.dirs.tensorboard, start,
                                       self.notes.append, self.dirs.evaluations)
            stack.callback(self.log.close)
            self._skipped = JsonlWriter(self.dirs.skipped, start, self.notes.append)
        else:
            self.log = _NullLog()
            self._skipped = JsonlWriter(Path(os.devnull), 0)
        stack.callback(self._skipped.close)

    def _real_batches(self, stack: contextlib.ExitStack) -> Iterator[ImageBatch]:
        """This rank's endless batches of real images, from where the run stands; loader
        workers are shut down by ``stack`` however ``fit`` ends."""
        run = self.recipe.run
        pin = self.device.type == "cuda" if run.pin_memory is None else run.pin_memory
        batches = real_batches(self.dataset, self.dist.per_rank_batch(run.batch_size),
                               run.seed, self.batches_seen, num_workers=run.num_workers,
                               device=self.device, pin_memory=pin,
                               persistent_workers=run.persistent_workers,
                               prefetch_factor=run.prefetch_factor, rank=self.dist.rank,
                               world_size=self.dist.world_size)
        stack.callback(shutdown_workers, batches)
        return batches

    # -- periodic work (called by the callbacks) ---------------------------------------------

    def write_samples(self) -> Path:
        """Write the grid of the fixed latent batch for the current step."""
        path = self.dirs.sample_path(self.step)
        if not self.dist.is_main:
            return path
        grid = image_grid(generate(self.sampling_generator, self.fixed_z, self.fixed_labels),
                          self.grid_columns)
        with writing(path):
            path = write_grid(grid, path)
        self.log.image_grid(self.step, grid)
        self.callbacks.sample_written(self.context, path)
        return path

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Write the checkpoint of the current step (to ``path``, default the rotating
        ``step-N`` name), then rotate older ``step-N`` ones."""
        rotating = path is None
        path = path or self.dirs.checkpoint_path(self.step)
        # Rank 0 alone writes, and checks, what it writes: every rank holds the same
        # weights, and other ranks' BatchNorm statistics are never saved.
        tensors: dict[str, torch.Tensor] = {}
        optimizers: dict[str, Any] = {}
        components: dict[str, dict[str, Any]] = {}
        bad: list[str] = []
        if self.dist.is_main:
            tensors, optimizers, components = self.state()
            bad = [k for k, v in tensors.items() if v.is_floating_point()
                   and not torch.isfinite(v).all()]
        refused = f"step {self.step}: refusing to checkpoint non-finite state"
        if rotating and self.dist.enabled:
            # Every rank saves on the same steps: all stop together when rank 0 refuses,
            # instead of the others waiting at their next collective.
            flag = torch.tensor([float(bool(bad))], device=self.device)
            if self.dist.maximum(flag).item() and not bad:
                raise TrainingError(f"{refused} (found by rank 0)")
        if bad:
            raise TrainingError(f"{refused} ({', '.join(bad[:3])})")
        if rotating:
            self._last_checkpoint = path
        if not self.dist.is_main:
            return path
        write_checkpoint(path, tensors, step=self.step, recipe_toml=self.recipe.to_toml(),
                         versions=self.versions(), optimizers=optimizers,
                         trainer=self.counters(), components=components)
        if rotating:
            self.dirs.rotate_checkpoints(self.recipe.run.keep_last, protect=(path,))
        self.callbacks.checkpoint_saved(self.context, path)
        return path

    # -- state ------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
        """Every tensor needed to continue exactly, the optimizers' JSON-able rest, and the
        JSON-able state of stateful components (:func:`~.resume.capture_state`)."""
        return capture_state(self)

    def versions(self) -> dict[str, str]:
        """Versions of ganforge, torch and every loaded plugin distribution."""
        return {"ganforge": __version__, "torch": torch.__version__, **self.plugin_versions}

    def counters(self) -> dict[str, Any]:
        """Trainer state that is not a tensor, saved in every checkpoint."""
        return {"batches_seen": self.batches_seen, "best": self.best,
                "elapsed_s": self.elapsed_s(), "rollbacks": self.rollbacks,
                "threads": torch.get_num_threads(), "precision": self.speed.precision,
                "grad_scalers": grad_scaler_states(self.experiment.grad_scalers,
                                                   self.train_step.skipped)}

    def elapsed_s(self) -> float:
        """Training wall time of this run so far, earlier sessions included."""
        session = time.perf_counter() - self._session_start if self._session_start else 0.0
        return self._elapsed_before + session

    def restore(self, path: str | Path) -> None:
        """Continue from checkpoint ``path`` of this recipe (:func:`~.resume.restore_state`:
        checked before anything is loaded where the checkpoint alone tells)."""
        restore_state(self, path)

    def roll_back(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` after a divergence (the divergence policy decides):
        with the counters that describe the whole run kept, past the batches that
        diverged, with latents the failed attempt did not use (and, under torchrun,
        different on every rank)."""
        batches_seen, rollbacks, best = self.batches_seen, self.rollbacks, self.best
        self.restore(checkpoint)
        self.rollbacks, self.best = rollbacks + 1, best
        self._session_start = time.perf_counter()  # restore() reloaded the elapsed time
        self.losses.reset()
        self.batches_seen = batches_seen
        self.latent_rng.manual_seed(derive_seed(self.recipe.run.seed, "rollback",
                                                self.rollbacks, self.dist.rank))


class _NullLog:
    """Stands in for the metrics log on ranks that write no files."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        pass

    def image_grid(self, step: int, grid: torch.Tensor) -> None:
        pass

    def evaluation(self, step: int, record: dict[str, object]) -> None:
        pass

    def close(self) -> None:
        pass


def train(recipe: Recipe, plugins: Plugins, run_dir: str | Path, *, resume: bool = False,
          progress: bool = True, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train ``recipe`` in ``run_dir``: a new run, or with ``resume`` the continuation of
    the newest complete checkpoint there (from step 0 when there is none yet, so the same
    command line serves a first launch and every requeue). An existing run is never
    overwritten, nor a folder of other files (one a run would overwrite), and one process
    at a time trains in a run directory (an OS lock held for the whole run, see
    :class:`RunDirectory`). ``callbacks`` run after the built-in periodic work, with their
    state saved in every checkpoint (pass the same ones again to resume)."""
    dirs = RunDirectory(Path(run_dir))
    if is_main_process() and not dirs.has_run():
        # Before the lock, whose file would be the first thing written into a user's folder.
        foreign = dirs.foreign_entry()
        if foreign is not None:
            raise UsageError(f"{_shown(dirs.root)} is not empty and holds no ganforge run "
                             f"(found {_shown(foreign)}); use an empty or new --out (nothing "
                             "was written)")
    with contextlib.ExitStack() as stack:
        if is_main_process():  # other ranks of a torchrun job write nothing there
            stack.enter_context(dirs.lock())
        checkpoint = None
        notes = []
        if resume:
            checkpoint = resume_checkpoint(dirs.checkpoints)  # a refused one stops here
            if checkpoint is None:
                refuse_another_recipe(dirs, recipe, plugins.registry)
                notes.append(f"--resume: no complete checkpoint in {dirs.checkpoints} yet; "
                             "starting at step 0")
        elif dirs.has_run():
            raise UsageError(f"run directory {dirs.root} already holds a run; pass --resume "
                             "to continue it or --out for a new directory")
        trainer = Trainer(recipe, plugins, dirs.root, progress=progress, callbacks=callbacks)
        trainer.notes.extend(notes + recipe.notes())
        if checkpoint is not None:
            trainer.restore(checkpoint)
        if trainer.dist.is_main:
            dirs.create()
            dirs.remove_stale_temporaries()  # we hold the lock: no live writer owns them
            write_text_atomic(dirs.recipe, recipe.to_toml())
        return trainer.fit()


def _shown(path: Path) -> str:
    """``path`` for a one-line message: quoted if it holds a line break or the like."""
    text = str(path)
    return text if text.isprintable() else repr(text)
