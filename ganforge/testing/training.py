"""The end-to-end check: a tiny run trained straight through and the same run stopped at a
checkpoint and resumed end with identical checkpoints."""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .loading import RegistryLike, as_plugins
from .networks import PARTNER, partners_registered
from .report import fail

#: The run the training check starts from: the kit's MLP networks (registered for the
#: check as ``testkit:mlp``) on 16x16 ``synthetic`` images, batches of 4, on the CPU, in
#: float32; the loss, optimizers and schedules are the recipe defaults (bce, adam,
#: constant). A component under test replaces its table.
BASE_RECIPE: dict[str, Any] = {
    "run": {"batch_size": 4, "seed": 0, "device": "cpu", "sample_count": 4,
            "precision": "fp32"},
    "dataset": {"use": "synthetic", "count": 16, "image_size": 16, "channels": 3},
    "generator": {"use": PARTNER, "latent_dim": 8, "hidden": 16},
    "discriminator": {"use": PARTNER, "hidden": 16},
}


def training_table(recipe: Mapping[str, Any] | str | Path | None = None,
                   overrides: Iterable[str] = (), steps: int = 4,
                   resume_at: int = 2) -> dict[str, Any]:
    """:data:`BASE_RECIPE` with ``recipe`` (a table, or a TOML file and what it extends)
    merged over it and ``overrides`` (``--set`` strings) applied; then ``run.steps``,
    checkpoints every ``resume_at`` steps, and logs and samples are set for the check."""
    from ..recipe import apply_overrides, load_raw
    from ..recipe.loading import merge

    if not 0 < resume_at < steps:
        raise ValueError(f"resume_at must lie between 0 and steps ({steps}): {resume_at}")
    table = copy.deepcopy(BASE_RECIPE)
    if isinstance(recipe, str | Path):
        table = merge(table, load_raw(Path(recipe)))
        table.pop("extends", None)
    elif recipe is not None:
        table = merge(table, recipe)
    table = apply_overrides(table, list(overrides))
    run = table.setdefault("run", {})
    run.update(steps=steps, checkpoint_every=resume_at, log_every=resume_at,
               sample_every=steps, keep_last=steps // resume_at + 1)
    run.pop("out", None)
    return table


def train_and_resume(recipe: Mapping[str, Any] | str | Path | None = None, *,
                     overrides: Iterable[str] = (), registry: RegistryLike = None,
                     steps: int = 4, resume_at: int = 2,
                     run_dir: str | Path | None = None) -> None:
    """Train ``steps`` steps straight, and the same run again from its checkpoint at step
    ``resume_at`` with ``resume=True`` (as after a kill); the two final checkpoints must
    hold identical tensors (weights, optimizer states, RNG states, component state) and
    metadata. Raises ``AssertionError`` naming what differs."""
    from ..io.checkpoint_names import checkpoint_step
    from ..recipe.model import build_recipe
    from ..training import read_checkpoint, train

    plugins = as_plugins(registry)
    table = training_table(recipe, overrides, steps, resume_at)
    with work_dir(run_dir) as root, partners_registered(plugins.registry):
        resolved = build_recipe(table, plugins.registry, source="check_training")
        straight = train(resolved, plugins, root / "straight", progress=False)
        shutil.copytree(root / "straight", root / "resumed")
        for path in (root / "resumed" / "checkpoints").iterdir():
            step = checkpoint_step(path)
            if step is not None and step > resume_at:
                path.unlink()
        resumed = train(resolved, plugins, root / "resumed", resume=True, progress=False)
        if straight.step != steps or resumed.step != steps:
            raise fail(f"the runs stopped at steps {straight.step} and {resumed.step}, not "
                       f"{steps}")
        if straight.checkpoint is None or resumed.checkpoint is None:
            raise fail("a run wrote no checkpoint")
        a, b = read_checkpoint(straight.checkpoint), read_checkpoint(resumed.checkpoint)
    if a.tensors.keys() != b.tensors.keys():
        raise fail(f"the resumed run's checkpoint has other tensors: only straight: "
                   f"{sorted(a.tensors.keys() - b.tensors.keys())[:5]}, only resumed: "
                   f"{sorted(b.tensors.keys() - a.tensors.keys())[:5]}")
    differ = [k for k in a.tensors
              if a.tensors[k].dtype != b.tensors[k].dtype
              or not a.tensors[k].equal(b.tensors[k])]
    if differ:
        raise fail(f"{steps} steps straight and {resume_at} + resume {steps - resume_at} end "
                   f"with different {', '.join(differ[:6])}"
                   + (f" (and {len(differ) - 6} more)" if len(differ) > 6 else "")
                   + ": some state is not in the checkpoint (keep it in state_dict or "
                   "component_state) or a random number is drawn outside the seeded "
                   "generators")
    for what in ("components", "optimizers"):
        if getattr(a, what) != getattr(b, what):
            raise fail(f"{steps} steps straight and {resume_at} + resume end with different "
                       f"checkpoint metadata '{what}': {getattr(a, what)!r} vs "
                       f"{getattr(b, what)!r}")
    if a.trainer.batches_seen != b.trainer.batches_seen:
        raise fail("the resumed run drew another number of batches")


@contextlib.contextmanager
def work_dir(run_dir: str | Path | None) -> Iterator[Path]:
    """``run_dir`` itself (created), or a temporary directory removed afterwards."""
    if run_dir is not None:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ganforge-contract-") as temp:
        yield Path(temp)
