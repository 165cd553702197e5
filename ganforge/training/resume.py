"""What a checkpoint holds of a run and how a run continues from one: capturing the whole
state, restoring it exactly, and refusing (or noting) what would make a resume inexact.

A resumed run may change only how long and how it runs (``[run]``, ``[eval]`` and
``[callbacks.*]``, except :data:`RESUME_FIXED_RUN_KEYS`), never what it computes. CPU
thread counts and the precision ``run.precision = "auto"`` resolves to are recorded, and a
change is noted.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from ..core.errors import CheckpointError, RecipeError, UsageError
from ..core.registry import Registry
from ..core.seeds import derive_seed
from ..io.checkpoint_files import optimizer_from_flat, optimizer_to_flat, read_checkpoint
from ..io.checkpoint_schema import EMA_PREFIX, GradScalerState, TrainerMeta
from ..recipe import Recipe, build_recipe
from .callbacks import split_callback_state
from .checkpoint_checks import load_module_state, validate_optimizer_state
from .rng import capture_rng, restore_rng, rng_state_problems
from .run_dir import RunDirectory
from .step import NETWORK_INDEX

if TYPE_CHECKING:
    from .trainer import Trainer

#: ``[run]`` keys a resumed run must keep: changing them would change what is computed.
RESUME_FIXED_RUN_KEYS = ("seed", "batch_size", "d_steps", "sample_count", "precision")


def recipe_differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                       registry: Registry | None = None) -> list[str]:
    """The tables and ``[run]`` keys in which two resolved recipes (as tables) differ in
    what they compute: every table but ``[run]``, ``[eval]`` and ``[callbacks.*]``, and
    :data:`RESUME_FIXED_RUN_KEYS`. With ``registry``, ``saved`` is resolved again first, so
    tables and params added since it was written (at their defaults, which compute what
    the old version did) do not count as differences."""
    saved = resolved_again(saved, registry)
    differing = sorted(k for k in set(saved) | set(current)
                       if k not in ("run", "eval", "plugins", "callbacks")
                       and saved.get(k) != current.get(k))
    differing += _plugin_differences(saved.get("plugins"), current.get("plugins"), registry)
    saved_run, current_run = saved.get("run", {}), current.get("run", {})
    saved_run = saved_run if isinstance(saved_run, Mapping) else {}
    current_run = current_run if isinstance(current_run, Mapping) else {}
    return differing + sorted(f"run.{k}" for k in RESUME_FIXED_RUN_KEYS
                              if saved_run.get(k) != current_run.get(k))


def _plugin_differences(saved: Any, current: Any, registry: Registry | None) -> list[str]:
    """``plugins.<name>`` for each plugin settings table that differs, except the tables of
    plugins whose settings class says ``affects_training = False`` (observers such as the
    W&B and MLflow trackers: turning one on for a resumed run changes nothing it computes)."""
    saved = saved if isinstance(saved, Mapping) else {}
    current = current if isinstance(current, Mapping) else {}
    settings = registry.settings if registry is not None else {}
    return sorted(f"plugins.{name}" for name in set(saved) | set(current)
                  if saved.get(name) != current.get(name)
                  and getattr(settings.get(name), "affects_training", True))


def resolved_again(table: Mapping[str, Any], registry: Registry | None) -> Mapping[str, Any]:
    """``table`` (a resolved recipe written by any version) resolved by this version:
    new tables and params get their defaults. Unchanged when it no longer builds."""
    if registry is None:
        return table
    try:
        return build_recipe(table, registry).to_dict()
    except RecipeError:
        return table


def refuse_another_recipe(dirs: RunDirectory, recipe: Recipe,
                          registry: Registry | None = None) -> None:
    """Refuse to start ``recipe`` over a run directory whose ``recipe.toml`` computes
    something else (a requeue of the same run passes)."""
    if not dirs.recipe.exists():
        return
    try:
        saved = tomllib.loads(dirs.recipe.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{dirs.recipe}: cannot read the run's recipe ({exc}); use another "
                         "--out") from None
    differing = recipe_differences(saved, recipe.to_dict(), registry)
    if differing:
        raise UsageError(f"run directory {dirs.root} holds a run of another recipe "
                         f"({', '.join(differing)} differ); use another --out")


def capture_state(trainer: Trainer
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Every tensor needed to continue exactly, the optimizers' JSON-able rest, and the
    JSON-able state of stateful components."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in networks(trainer).items():
        tensors.update({f"{prefix}/{k}": v for k, v in module.state_dict().items()})
    optimizers: dict[str, Any] = {}
    for name, opt in trainer.experiment.optimizers.items():
        flat, rest = optimizer_to_flat(f"optimizer/{name}", opt)
        tensors.update(flat)
        optimizers[name] = rest
    tensors.update(capture_rng(trainer.latent_rng))
    tensors.update(trainer.losses.state())
    component_tensors, components = trainer.experiment.component_states()
    tensors.update(component_tensors)
    callback_tensors, callback_values = trainer.callbacks.states()
    tensors.update(callback_tensors)
    components.update(callback_values)
    return tensors, optimizers, components


def restore_state(trainer: Trainer, path: str | Path) -> None:
    """Load a checkpoint of this recipe; only the ``[run]`` table may differ. Everything
    is checked before anything is loaded where the checkpoint alone tells (metadata,
    recipe, RNG states); weights and optimizer states are checked key by key."""
    contents = read_checkpoint(path)
    differing = recipe_differences(contents.recipe_table, trainer.recipe.to_dict(),
                                   trainer.registry)
    if differing:
        raise CheckpointError(f"{path}: made by a different recipe ({', '.join(differing)} "
                              "differ); a resumed run may change only how long and how it "
                              "runs, not what it computes")
    problems = rng_state_problems(contents.tensors, trainer.latent_rng, required=True)
    if problems:
        raise CheckpointError(f"{path}: RNG state does not load: {'; '.join(problems)}")
    for name, module in networks(trainer).items():
        load_module_state(module, contents.section(name), name, path)
    scalers = scaler_states(contents.trainer, trainer.experiment.grad_scalers, path)
    try:
        for name, optimizer in trainer.experiment.optimizers.items():
            state = optimizer_from_flat(contents.section(f"optimizer/{name}"),
                                        contents.optimizers[name])
            validate_optimizer_state(optimizer, state, name, path)
            optimizer.load_state_dict(state)
            match_parameter_layout(optimizer)
        restore_rng(contents.tensors, trainer.latent_rng)
        if trainer.dist.rank:  # the checkpoint holds rank 0's stream; others derive theirs
            trainer.latent_rng.manual_seed(derive_seed(trainer.recipe.run.seed, "latents",
                                                    trainer.dist.rank, contents.step))
        # The sums are rank 0's: other ranks start their partial sums afresh.
        trainer.losses.load(contents.section("trainer") if trainer.dist.is_main else {})
        load_grad_scalers(trainer, scalers)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: optimizer, RNG or trainer state does not load: "
                              f"{exc}") from None
    # The callbacks' state (``callbacks.<key>``) goes to the callbacks, the rest to the
    # experiment's components.
    (callback_tensors, callback_values), (tensors, values) = split_callback_state(
        contents.tensors, contents.components)
    trainer.notes.extend(trainer.experiment.load_component_states(
        attrs.evolve(contents, tensors=tensors, components=values), path))
    trainer.notes.extend(trainer.callbacks.load_states(callback_tensors, callback_values, path))
    meta = contents.trainer
    trainer.step = contents.step
    trainer.batches_seen = (meta.batches_seen if meta.batches_seen is not None
                         else contents.step * trainer.recipe.run.d_steps)
    trainer.best = None if meta.best is None else attrs.asdict(meta.best)
    trainer._elapsed_before = meta.elapsed_s
    trainer.rollbacks = meta.rollbacks
    saved_run = contents.recipe_table.get("run", {})
    saved_steps = saved_run.get("steps") if isinstance(saved_run, Mapping) else None
    trainer.notes.extend(how_it_differs(trainer, meta, saved_steps
                                        if isinstance(saved_steps, int) else None))
    trainer.train_step.watch.reset()


def networks(trainer: Trainer) -> dict[str, torch.nn.Module]:
    """The networks a checkpoint holds, by tensor prefix: G, D and the EMA of G (kept)."""
    found = {"generator": trainer.generator, "discriminator": trainer.discriminator}
    if trainer.experiment.ema is not None:
        found[EMA_PREFIX] = trainer.experiment.ema.average
    return found


def grad_scaler_states(scalers: Mapping[str, torch.amp.GradScaler], skipped: torch.Tensor
                       ) -> dict[str, dict[str, Any]] | None:
    """The fp16 loss scalers' states for a checkpoint (None when there are none)."""
    if not scalers:
        return None
    counts = skipped.tolist()
    states = {}
    for name, scaler in scalers.items():
        state = scaler.state_dict()
        states[name] = {"scale": float(state["scale"]),
                        "growth_tracker": int(state["_growth_tracker"]),
                        "skipped": int(counts[NETWORK_INDEX[name]])}
    return states


def scaler_states(meta: TrainerMeta, scalers: Mapping[str, torch.amp.GradScaler],
                  path: str | Path) -> dict[str, GradScalerState]:
    """The saved scaler state for each of ``scalers``, checked before anything loads."""
    saved = meta.grad_scalers or {}
    if set(saved) != set(scalers):
        raise CheckpointError(f"{path}: holds fp16 loss scalers for {sorted(saved) or 'none'}, "
                              f"this run has {sorted(scalers) or 'none'}")
    return saved


def load_grad_scalers(trainer: Trainer, saved: Mapping[str, GradScalerState]) -> None:
    """Give the fp16 loss scalers their saved scale, growth tracker and skip counts."""
    for name, state in saved.items():
        scaler = trainer.experiment.grad_scalers[name]
        current = scaler.state_dict()
        current.update(scale=state.scale, _growth_tracker=state.growth_tracker)
        scaler.load_state_dict(current)
        trainer.train_step.skipped[NETWORK_INDEX[name]] = state.skipped


def schedule_notes(trainer: Trainer, saved_steps: int | None) -> list[str]:
    """A note for each learning-rate schedule whose rates from here on change because
    ``run.steps`` changed (a schedule spanning the run, e.g. linear decay to zero)."""
    current = trainer.recipe.run.steps
    if saved_steps is None or saved_steps == current:
        return []
    step = trainer.step + 1
    return [f"[schedule.{name}] spans run.steps, which changed from {saved_steps} to "
            f"{current}: its learning rates from step {step} on follow the new length"
            for name, schedule in trainer.experiment.schedulers.items()
            if schedule.factor(step, saved_steps) != schedule.factor(step, current)]


def how_it_differs(trainer: Trainer, saved: TrainerMeta,
                   recipe_steps: int | None = None) -> list[str]:
    """Notes on what makes this session compute differently from the one that wrote
    the checkpoint although the recipe is the same: CPU results depend on the number of
    threads, ``run.precision = "auto"`` resolves per device, and a schedule that spans
    ``run.steps`` (``recipe_steps`` when the checkpoint was written) follows a new length."""
    notes = schedule_notes(trainer, recipe_steps)
    threads = saved.threads
    if threads is not None and threads != torch.get_num_threads():
        notes.append(f"resume is not bit-exact: the checkpoint was trained with {threads} "
                     f"CPU threads, this process uses {torch.get_num_threads()} (set "
                     f"OMP_NUM_THREADS={threads} to match)")
    precision = saved.precision
    if precision is not None and precision != trainer.speed.precision:
        notes.append(f"resume is not bit-exact: the checkpoint was trained in {precision}, "
                     f"run.precision = {trainer.recipe.run.precision!r} resolves to "
                     f"{trainer.speed.precision} on {trainer.device}")
    return notes


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give restored optimizer state the memory layout (e.g. channels_last) of its
    parameter: fused and foreach kernels pair elements by memory position."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape \
                    and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
