"""Metrics during training: logged, best checkpoint kept apart, training unperturbed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganforge.errors import RecipeError
from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.checkpoint_format import read_checkpoint

EVAL = ["eval.every=2", "eval.metrics.fid.use=fid", "eval.metrics.fid.extractor=pixels",
        "eval.metrics.fid.n_fake=16", "eval.metrics.fid.n_real=24",
        "eval.metrics.kid.use=kid", "eval.metrics.kid.extractor=pixels",
        "eval.metrics.kid.n_fake=16", "eval.metrics.kid.n_real=24",
        "eval.metrics.kid.subset_size=8", "eval.metrics.kid.subsets=4"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))


def run(plugins, recipe: Path, out: Path, *overrides: str, resume: bool = False):
    return train(load_recipe(recipe, plugins.registry, overrides), plugins, out,
                 resume=resume, progress=False)


def test_metrics_logged_and_best_kept_apart(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    result = run(plugins, tiny_recipe, tmp_path / "run", *EVAL, "run.keep_last=1")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in lines if "eval/fid" in x]
    assert [x["step"] for x in evals] == [2, 4, 6]
    assert all(x["eval/fid"] > 0 and "eval/kid" in x and x["eval/seconds"] > 0 for x in evals)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names[-1] == "step-0000006.safetensors" and len(names) == 2  # rotation: keep 1
    best = tmp_path / "run" / "checkpoints" / "best-fid.safetensors"
    assert names[0] == best.name
    contents = read_checkpoint(best)
    best_step = min(evals, key=lambda x: x["eval/fid"])["step"]
    assert contents.step == best_step
    assert contents.trainer.best.value == pytest.approx(
        min(x["eval/fid"] for x in evals))
    assert read_checkpoint(result.checkpoint).trainer.best.step == best_step


def test_evaluation_does_not_change_training(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    plain = run(plugins, tiny_recipe, tmp_path / "plain")
    evaluated = run(plugins, tiny_recipe, tmp_path / "eval", *EVAL)
    a, b = load_file(plain.checkpoint), load_file(evaluated.checkpoint)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_eval_settings_may_change_on_resume(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    run(plugins, tiny_recipe, tmp_path / "run", "run.steps=3")
    resumed = run(plugins, tiny_recipe, tmp_path / "run", *EVAL, resume=True)
    assert resumed.step == 6 and "eval/fid" in resumed.last_metrics


def test_eval_table_errors(plugins, tiny_recipe: Path) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(tiny_recipe, plugins.registry, ["eval.every=5", "eval.best=fdi"])
    problems = dict(info.value.problems)
    assert problems["$.eval.every"] == "set, but no [eval.metrics.<label>] table"
    assert problems["$.eval.best"] == "no metric labelled 'fdi'"
    with pytest.raises(RecipeError, match=r"\$\.eval\.metrics\.x\.use: unknown metric 'fdi', "
                       "did you mean 'fid'"):
        load_recipe(tiny_recipe, plugins.registry, ["eval.metrics.x.use=fdi"])
    with pytest.raises(RecipeError, match=r"\$\.eval\.metrics\.x\.extractor: unknown "
                       r"extractor 'vgg'; known: digits, inception, pixels"):
        load_recipe(tiny_recipe, plugins.registry, ["eval.metrics.x.use=fid",
                                                    "eval.metrics.x.extractor=vgg"])


def test_a_refused_best_checkpoint_does_not_stop_the_evaluating_rank(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    """Non-finite state at an evaluation: rank 0 evaluates alone, so the best checkpoint
    is skipped with a note (and ``best`` kept) instead of raising on rank 0 only; the
    periodic save, which every rank makes, is what refuses it."""
    from ganforge.errors import TrainingError
    from ganforge.training import Trainer
    from ganforge.training.callbacks import Evaluate
    from ganforge.training.progress import TrainingProgress

    recipe = load_recipe(tiny_recipe, plugins.registry, EVAL)
    trainer = Trainer(recipe, plugins, tmp_path / "run", progress=False)
    trainer.dirs.create()
    notes: list[str] = []
    progress = TrainingProgress(6, 0, enabled=False)
    progress.note = notes.append  # type: ignore[method-assign]
    with torch.no_grad():
        next(trainer.discriminator.parameters()).fill_(float("inf"))
    values = Evaluate(2).evaluate(trainer, progress)
    assert "eval/fid" in values and trainer.best is None
    assert any("refusing to checkpoint non-finite state" in n and "best-fid not updated" in n
               for n in notes)
    assert not (tmp_path / "run" / "checkpoints" / "best-fid.safetensors").exists()
    with pytest.raises(TrainingError, match="non-finite"):
        trainer.save_checkpoint()


def test_every_score_is_recorded_with_its_protocol(plugins, tiny_recipe: Path,
                                                   tmp_path: Path) -> None:
    """``evaluations.jsonl`` holds each score computed during training with the protocol
    the evaluation used (what ``ganforge export`` puts in the model card); a resume drops
    the records of the steps it recomputes, as ``metrics.jsonl`` does."""
    out = tmp_path / "run"
    warn = "eval.metrics.fid.protocol_images=100"
    run(plugins, tiny_recipe, out, *EVAL, warn, "run.steps=4")
    path = out / "evaluations.jsonl"
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["step"], r["label"]) for r in records] == [(2, "fid"), (2, "kid"), (4, "fid"),
                                                          (4, "kid")]
    logged = {(x["step"], k[5:]): v for x in map(json.loads, (out / "metrics.jsonl")
                                                  .read_text().splitlines())
              for k, v in x.items() if k.startswith("eval/") and k != "eval/seconds"}
    for record in records:
        assert record["value"] == logged[(record["step"], record["label"])]
        protocol = record["protocol"]
        assert protocol["step"] == record["step"] and protocol["extractor"] == "pixels-8x8"
        assert protocol["n_fake"] == 16 and protocol["n_real"] == 24
        assert protocol["generator"] == "raw" and protocol["reference"]["key"]
    fid = [r for r in records if r["label"] == "fid"]
    assert all("fewer than the 100" in r["warnings"][0] for r in fid)
    assert all(r["warnings"] == [] for r in records if r["label"] == "kid")
    # resumed from the step-3 checkpoint: step 4 is computed again, recorded once
    (out / "checkpoints" / "step-0000004.safetensors").unlink()
    run(plugins, tiny_recipe, out, *EVAL, warn, "run.steps=6", resume=True)
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["step"], r["label"]) for r in records] == [
        (2, "fid"), (2, "kid"), (4, "fid"), (4, "kid"), (6, "fid"), (6, "kid")]


def test_a_bad_reference_statistics_file_stops_the_run_before_its_first_step(
        plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    from ganforge.errors import UsageError

    with pytest.raises(UsageError, match="missing.npz"):
        run(plugins, tiny_recipe, tmp_path / "run", *EVAL,
            f"eval.metrics.fid.reference_stats='{tmp_path / 'missing.npz'}'")
    assert not list((tmp_path / "run" / "checkpoints").glob("*.safetensors"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or \
        (tmp_path / "run" / "metrics.jsonl").read_text() == ""
