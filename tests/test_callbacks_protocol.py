"""Callbacks as a protocol (issue 24, item 4): no-op hooks, their own checkpointed state, a
narrow context instead of the trainer; users add theirs through ``train(callbacks=...)`` or
a recipe's ``[callbacks.<label>]`` table; the callbacks modules import neither the trainer
nor resume."""

from __future__ import annotations

import ast
import signal
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import ganforge
from ganforge import hookimpl, load_plugins
from ganforge.callback import Callback, CallbackContext
from ganforge.errors import RecipeError, UsageError
from ganforge.io.checkpoint_files import read_checkpoint
from ganforge.recipe import load_recipe
from ganforge.training import Trainer
from ganforge.training.callbacks import callback_keys
from ganforge.training.trainer import train
from tests.conftest import one_error_line

ROOT = Path(__file__).parent.parent


class StepCounter(Callback):
    """Counts every step (reading nothing from the device) and sums the steps as a tensor:
    state a resume must give back exactly."""

    every = 1
    host_sync = False

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.total = torch.zeros((), dtype=torch.int64)
        self.started_at: list[int] = []

    def on_train_start(self, ctx: CallbackContext) -> None:
        self.started_at.append(ctx.step)

    def on_step_end(self, ctx: CallbackContext, step: int) -> None:
        self.steps.append(step)
        self.total += step

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "total": self.total.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps, self.total = list(state["steps"]), state["total"].clone()


class InterruptAt(Callback):
    """Sends this process SIGINT after step ``at``: Ctrl-C, as a user would press it."""

    every = 1
    host_sync = False

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_step_end(self, ctx: CallbackContext, step: int) -> None:
        if step == self.at:
            signal.raise_signal(signal.SIGINT)


class LogCounter(Callback):
    """A plugin's callback: counts the steps where it is due and logs the count."""

    @attrs.frozen
    class Params:
        every: int = 2

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.every = params.every
        self.calls = 0

    def on_step_end(self, ctx: CallbackContext, step: int) -> None:
        self.calls += 1
        ctx.log.scalars(step, {"counter/calls": float(self.calls)})

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.calls = int(state["calls"])


def plugins_with_counter():
    plugin = types.ModuleType("counter_plugin")

    @hookimpl
    def ganforge_register(registry):
        registry.register("callback", "log_counter", LogCounter)

    plugin.ganforge_register = ganforge_register
    return load_plugins(extra=[("counter_plugin", plugin)])


def test_a_user_callback_keeps_its_state_across_an_interrupted_run(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe, plugins.registry)
    whole_counter = StepCounter()
    whole = train(recipe, plugins, tmp_path / "whole", progress=False,
                  callbacks=[whole_counter])
    assert whole_counter.steps == [1, 2, 3, 4, 5, 6] and whole_counter.started_at == [0]

    first = train(recipe, plugins, tmp_path / "split", progress=False,
                  callbacks=[StepCounter(), InterruptAt(4)])
    assert first.interrupted and first.step == 4
    assert first.checkpoint is not None and first.checkpoint.name == "step-0000004.safetensors"
    counter = StepCounter()
    split = train(recipe, plugins, tmp_path / "split", resume=True, progress=False,
                  callbacks=[counter])
    assert counter.steps == [1, 2, 3, 4, 5, 6] and counter.started_at == [4]
    a, b = load_file(whole.checkpoint), load_file(split.checkpoint)
    assert a.keys() == b.keys() and "state/callbacks.StepCounter/total" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key  # weights, optimizers, the callback's tensor
    saved = read_checkpoint(split.checkpoint).components
    assert saved["callbacks.StepCounter"] == {"steps": [1, 2, 3, 4, 5, 6]}


def test_a_checkpoint_without_callback_state_resumes_with_a_note(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    """A checkpoint written before the run had callbacks (or before callbacks had state)
    loads; the callback starts afresh, and says so."""
    out = tmp_path / "run"
    train(load_recipe(tiny_recipe, plugins.registry, ["run.steps=3"]), plugins, out,
          progress=False)
    counter = StepCounter()
    trainer = Trainer(load_recipe(tiny_recipe, plugins.registry), plugins, out,
                      progress=False, callbacks=[counter])
    trainer.restore(out / "checkpoints" / "step-0000003.safetensors")
    assert any("no saved state for callback [callbacks.StepCounter]" in n
               for n in trainer.notes)
    assert trainer.fit().step == 6 and counter.steps == [4, 5, 6]


def test_a_recipe_table_names_a_plugin_callback(tiny_recipe: Path, tmp_path: Path) -> None:
    plugins = plugins_with_counter()
    recipe = load_recipe(tiny_recipe, plugins.registry,
                         ["callbacks.counter.use=log_counter", "callbacks.counter.every=3"])
    assert recipe.callbacks["counter"].params == LogCounter.Params(every=3)
    assert "[callbacks.counter]" in recipe.to_toml()
    result = train(recipe, plugins, tmp_path / "run", progress=False)
    assert result.last_metrics["counter/calls"] == 2.0  # due at steps 3 and 6
    assert read_checkpoint(result.checkpoint).components["callbacks.counter"] == {"calls": 2}
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum('"counter/calls"' in line for line in lines) == 2


def test_a_typo_in_a_callback_table_is_one_line_naming_its_use(
        plugins, tiny_recipe: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(tiny_recipe, plugins.registry, ["callbacks.x.use=stop_at_metrc"])
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0][0] == "$.callbacks.x.use"
    from ganforge.cli import app

    result = CliRunner().invoke(app, ["resolve", str(tiny_recipe),
                                      "--set", "callbacks.x.use=stop_at_metrc"])
    one_error_line(result, "$.callbacks.x.use", "stop_at_metric")


def test_stop_at_metric_ends_the_run_and_a_resume_stays_stopped(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    overrides = ["callbacks.early.use=stop_at_metric", "callbacks.early.metric=loss_d",
                 "callbacks.early.target=0.0", "callbacks.early.mode=above"]
    recipe = load_recipe(tiny_recipe, plugins.registry, overrides)
    out = tmp_path / "run"
    result = train(recipe, plugins, out, progress=False)
    assert result.step == 2 and not result.interrupted  # the first log step (log_every = 2)
    assert result.stopped_by is not None and "loss_d" in result.stopped_by
    assert result.checkpoint == out / "checkpoints" / "step-0000002.safetensors"
    again = train(recipe, plugins, out, resume=True, progress=False)
    assert again.step == 2 and again.stopped_by is not None
    with pytest.raises(RecipeError, match=r"\[eval.metrics.fid\] scored during training"):
        load_recipe(tiny_recipe, plugins.registry, ["callbacks.early.use=stop_at_metric"])


def test_callbacks_are_components_of_their_own_kind(plugins) -> None:
    assert "callback" in ganforge.KINDS
    from ganforge.interfaces import BASE_CLASSES

    assert BASE_CLASSES["callback"] is Callback
    assert [e.name for e in plugins.registry.list("callback")] == ["stop_at_metric"]
    from ganforge.cli import app

    listed = CliRunner().invoke(app, ["components", "callback"])
    assert listed.exit_code == 0 and "stop_at_metric" in listed.output


def test_callback_keys_are_stable_and_unique() -> None:
    a, b = StepCounter(), StepCounter()
    named = StepCounter()
    named.key = "mine"
    assert list(callback_keys([a, b, named], {})) == ["StepCounter", "StepCounter_2", "mine"]
    taken = StepCounter()
    taken.key = "early"
    with pytest.raises(UsageError, match="'early' is taken"):
        callback_keys([taken], {"early": StepCounter()})
    with pytest.raises(UsageError, match="is not a ganforge.Callback"):
        callback_keys([object()], {})  # type: ignore[list-item]


def _imported_modules(path: Path) -> set[str]:
    """The modules ``path`` imports (relative ones resolved to dotted names)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_the_callbacks_import_neither_the_trainer_nor_resume() -> None:
    files = [ROOT / "ganforge" / "callback.py", ROOT / "ganforge" / "builtins" / "callbacks.py",
             *sorted((ROOT / "ganforge" / "training" / "callbacks").glob("*.py"))]
    assert len(files) > 4
    for path in files:
        imported = _imported_modules(path)
        bad = sorted(m for m in imported if m in ("ganforge.training.trainer",
                                                  "ganforge.training.resume")
                     or m.startswith(("ganforge.training.trainer.",
                                      "ganforge.training.resume.")))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
