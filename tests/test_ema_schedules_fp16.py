"""The EMA of G, learning-rate schedules and fp16 loss scaling: their values, their logs,
and exact resume with all of them (and class labels) on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.builtins.schedules import ConstantSchedule, CosineSchedule, LinearSchedule
from ganforge.cli import app
from ganforge.recipe import EMAParams, load_recipe
from ganforge.training import train
from ganforge.training.assembly import load_experiment, load_generator
from ganforge.training.checkpoint_format import EMA_PREFIX, read_checkpoint
from ganforge.training.ema import ema_beta
from ganforge.training.resume import recipe_differences
from ganforge.training.speed import resolve_speed

from .conftest import TINY_RECIPE
from .test_conditional import CONDITIONAL

EVERYTHING = CONDITIONAL + """
[ema]
enabled = true
decay = 0.9
rampup = 0.05

[schedule.generator]
use = "linear"
warmup = 2
steps = 6

[schedule.discriminator]
use = "cosine"
steps = 6
"""


def write(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- schedules ------------------------------------------------------------------------------

def test_schedule_factors() -> None:
    assert [ConstantSchedule(ConstantSchedule.Params()).factor(s, 10) for s in (1, 10)] == \
        [1.0, 1.0]
    warm = ConstantSchedule(ConstantSchedule.Params(warmup=4))
    assert [warm.factor(s, 10) for s in (1, 2, 4, 5)] == [0.25, 0.5, 1.0, 1.0]
    linear = LinearSchedule(LinearSchedule.Params())
    assert linear.factor(1, 11) == pytest.approx(1.0) and linear.factor(11, 11) == 0.0
    assert linear.factor(6, 11) == pytest.approx(0.5)
    to_tenth = LinearSchedule(LinearSchedule.Params(final=0.1))
    assert to_tenth.factor(11, 11) == pytest.approx(0.1)
    cosine = CosineSchedule(CosineSchedule.Params(warmup=2))
    assert cosine.factor(1, 11) == pytest.approx(0.5)  # half-way through the warm-up
    assert cosine.factor(3, 11) == pytest.approx(1.0)  # the first step after it
    assert cosine.factor(7, 11) == pytest.approx(0.5)  # half-way through the decay
    assert cosine.factor(11, 11) == pytest.approx(0.0, abs=1e-12)
    fixed = LinearSchedule(LinearSchedule.Params(steps=10))
    assert fixed.factor(10, 1000) == 0.0  # spans its own steps, not run.steps


def test_schedules_are_listed_with_their_params() -> None:
    result = CliRunner().invoke(app, ["components", "show", "scheduler", "linear"])
    assert result.exit_code == 0, result.output
    for name in ("warmup", "final", "steps"):
        assert name in result.output
    listing = CliRunner().invoke(app, ["components"])
    assert "cosine" in listing.output and "constant" in listing.output


def test_learning_rates_follow_the_schedule_and_are_logged(tmp_path: Path, plugins) -> None:
    recipe = load_recipe(write(tmp_path, EVERYTHING), plugins.registry, ["run.log_every=1"])
    train(recipe, plugins, tmp_path / "run", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines()]
    base = 2e-4
    linear = LinearSchedule(LinearSchedule.Params(warmup=2, steps=6))
    cosine = CosineSchedule(CosineSchedule.Params(steps=6))
    for line in lines:
        assert line["lr/generator"] == pytest.approx(base * linear.factor(line["step"], 6))
        assert line["lr/discriminator"] == pytest.approx(base * cosine.factor(line["step"], 6))
    assert lines[-1]["lr/generator"] == 0.0


# -- EMA ------------------------------------------------------------------------------------

def test_ema_beta() -> None:
    params = EMAParams(enabled=True, decay=0.999, start=10, rampup=0.0)
    assert ema_beta(params, 10, 64) == 0.0  # a copy up to start
    assert ema_beta(params, 11, 64) == 0.999
    ramp = EMAParams(enabled=True, decay=0.999, rampup=0.05)
    # Early on, the half-life is 5% of the images seen: step 100 of 64 images -> 320 images.
    assert ema_beta(ramp, 100, 64) == pytest.approx(0.5 ** (64 / 320))
    # Later, the decay's own half-life (ln 0.5 / ln 0.999 updates of 64 images) caps it.
    assert ema_beta(ramp, 10**6, 64) == pytest.approx(0.999)


def test_ema_is_checkpointed_and_used_by_default(tmp_path: Path, plugins) -> None:
    recipe = load_recipe(write(tmp_path, EVERYTHING), plugins.registry)
    checkpoint = train(recipe, plugins, tmp_path / "run", progress=False).checkpoint
    tensors = read_checkpoint(checkpoint).tensors
    ema = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(EMA_PREFIX + "/")}
    raw = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("generator/")}
    assert ema.keys() == raw.keys()
    weights = [k for k in raw if k.endswith("weight")]
    assert any(not torch.equal(ema[k], raw[k]) for k in weights)  # it trails G
    buffers = [k for k in raw if "running" in k]
    assert buffers and all(torch.equal(ema[k], raw[k]) for k in buffers)  # copied
    averaged, *_ = load_generator(checkpoint, plugins.registry)
    plain, *_ = load_generator(checkpoint, plugins.registry, ema=False)
    state_ema, state_raw = averaged.state_dict(), plain.state_dict()
    assert all(torch.equal(state_ema[k], ema[k]) for k in ema)
    assert all(torch.equal(state_raw[k], raw[k]) for k in raw)
    assert load_experiment(checkpoint, plugins.registry).generator_is_ema
    assert not load_experiment(checkpoint, plugins.registry, ema=False).generator_is_ema
    runner = CliRunner()
    out = runner.invoke(app, ["sample", str(checkpoint), "-o", str(tmp_path / "a.png"),
                              "--device", "cpu"])
    assert out.exit_code == 0 and "(EMA)" in out.output


# -- exact resume ---------------------------------------------------------------------------

def _final_tensors(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "checkpoints" / "step-0000006.safetensors").tensors


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_is_exact_with_labels_ema_and_schedules(tmp_path: Path, plugins,
                                                       precision: str) -> None:
    path = write(tmp_path, EVERYTHING)
    setting = [f"run.precision={precision}"]
    recipe = load_recipe(path, plugins.registry, setting)
    train(recipe, plugins, tmp_path / "whole", progress=False)
    first = load_recipe(path, plugins.registry, [*setting, "run.steps=3"])
    train(first, plugins, tmp_path / "parts", progress=False)
    train(recipe, plugins, tmp_path / "parts", resume=True, progress=False)
    whole, parts = _final_tensors(tmp_path / "whole"), _final_tensors(tmp_path / "parts")
    assert whole.keys() == parts.keys()
    assert any(k.startswith(EMA_PREFIX) for k in whole)
    different = [k for k in whole if not torch.equal(whole[k], parts[k])]
    assert different == []
    meta = read_checkpoint(tmp_path / "parts" / "checkpoints" / "step-0000006.safetensors")
    if precision == "fp16":
        scalers = meta.trainer.grad_scalers
        assert scalers is not None and set(scalers) == {"generator", "discriminator"}
        assert all(s.scale > 0 for s in scalers.values())
        log = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
        assert "fp16/skipped_d" in json.loads(log[-1])
    else:
        assert meta.trainer.grad_scalers is None


def test_fp16_scaler_state_must_match(tmp_path: Path, plugins) -> None:
    """A checkpoint trained in fp32 has no loss scalers: resuming it in fp16 is refused
    before anything loads (run.precision is fixed on resume anyway)."""
    path = write(tmp_path, TINY_RECIPE)
    train(load_recipe(path, plugins.registry, ["run.steps=3"]), plugins, tmp_path / "run",
          progress=False)
    from ganforge.errors import CheckpointError

    with pytest.raises(CheckpointError):
        train(load_recipe(path, plugins.registry, ["run.precision=fp16"]), plugins,
              tmp_path / "run", resume=True, progress=False)


def test_changing_run_steps_notes_a_schedule_that_spans_it(tmp_path: Path, plugins) -> None:
    path = write(tmp_path, TINY_RECIPE + '\n[schedule.generator]\nuse = "linear"\n')
    train(load_recipe(path, plugins.registry, ["run.steps=3"]), plugins, tmp_path / "run",
          progress=False)
    from ganforge.training.trainer import Trainer

    trainer = Trainer(load_recipe(path, plugins.registry), plugins, tmp_path / "run",
                      progress=False)
    trainer.restore(tmp_path / "run" / "checkpoints" / "step-0000003.safetensors")
    notes = [n for n in trainer.notes if "[schedule.generator]" in n]
    assert len(notes) == 1 and "changed from 3 to 6" in notes[0]


def test_a_recipe_written_before_the_new_tables_resumes(tmp_path: Path, plugins) -> None:
    """A resolved recipe of an earlier version has no [ema] or [schedule.*] and no
    ``conditional`` param: resolved again, it computes what it did, so it is no change."""
    current = load_recipe(write(tmp_path, TINY_RECIPE), plugins.registry).to_dict()
    older = {k: v for k, v in current.items() if k not in ("ema", "schedule")}
    older["generator"] = {k: v for k, v in current["generator"].items() if k != "conditional"}
    assert recipe_differences(older, current, plugins.registry) == []
    assert "schedule" in recipe_differences(older, current)  # unresolved, they would differ


# -- precision ------------------------------------------------------------------------------

def test_auto_precision_picks_fp16_only_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    cuda = torch.device("cuda")
    assert resolve_speed("auto", None, False, cuda).precision == "fp32"
    assert resolve_speed("auto", None, False, cuda, allow_fp16=True).precision == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_speed("auto", None, False, cuda, allow_fp16=True).precision == "bf16"
    cpu = torch.device("cpu")
    assert resolve_speed("auto", None, False, cpu, allow_fp16=True).precision in ("fp32",
                                                                                  "bf16")
    fp16 = resolve_speed("fp16", None, False, cpu)
    assert fp16.fp16 and fp16.grad_scaler(cpu) is not None
    with fp16.autocast(cpu):
        out = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert out.dtype == torch.float16
    assert math.isfinite(float(out.detach().float().sum()))


def test_fp16_overflowing_updates_are_skipped_and_counted(tmp_path: Path, plugins) -> None:
    """A loss whose scaled gradients overflow float16: the scaler skips D's update (its
    weights stay as they were), counts it, and lowers its scale; no divergence is
    reported for it."""
    from ganforge.training.assembly import assemble
    from ganforge.training.step import GANStep

    recipe = load_recipe(write(tmp_path, TINY_RECIPE), plugins.registry,
                         ["run.precision=fp16"])
    x = assemble(recipe, plugins.registry, "cpu")
    loss = x.loss
    original = loss.discriminator_loss

    def huge(discriminator, real, fake, **labels):
        return original(discriminator, real, fake, **labels).float() * 1e4

    loss.discriminator_loss = huge
    before = {k: v.clone() for k, v in x.discriminator.state_dict().items()
              if v.is_floating_point()}
    scale = x.grad_scalers["discriminator"].get_scale()
    step = GANStep(x, torch.Generator().manual_seed(0))
    step(lambda: torch.zeros(8, 3, 32, 32), 1)
    assert int(step.skipped[0]) == 1  # (G may overflow too at the initial scale of 2**16)
    assert x.grad_scalers["discriminator"].get_scale() < scale
    after = x.discriminator.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if "running" not in k)
    assert step.watch.check() is None
