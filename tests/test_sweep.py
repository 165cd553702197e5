"""Ablation sweeps: expansion, validation, running, resuming, results and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import attrs
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.errors import RecipeError
from ganforge.sweep.plan import plan_sweep, variant_id
from ganforge.sweep.runner import run_plan

ROOT = Path(__file__).parent.parent


def sweep_file(folder: Path, tiny_recipe: Path, text: str) -> Path:
    path = folder / "sweep.toml"
    path.write_text(f'extends = "{tiny_recipe.name}"\n{text}')
    return path


def test_grid_zip_seeds_and_named_variants(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    grid = sweep_file(tmp_path, tiny_recipe, """
[sweep]
seeds = [0, 1]
[sweep.axes]
"generator.prior" = ["uniform", "normal"]
"optimizer.generator.lr" = [2e-4, 1e-3]
""")
    plan = plan_sweep(grid, plugins.registry, out=tmp_path / "out")
    assert plan.variants == ["prior=uniform_lr=0.0002", "prior=uniform_lr=0.001",
                             "prior=normal_lr=0.0002", "prior=normal_lr=0.001"]
    assert len(plan.runs) == 8 and {r.seed for r in plan.runs} == {0, 1}
    run = plan.runs[-1]
    assert run.recipe["generator"].params.prior == "normal"
    assert run.recipe["optimizer.generator"].params.lr == 1e-3
    assert run.recipe.run.seed == 1
    assert run.run_dir == tmp_path / "out" / "prior=normal_lr=0.001" / "seed-1"

    zipped = sweep_file(tmp_path, tiny_recipe, """
[sweep]
mode = "zip"
[sweep.axes]
"optimizer.generator.lr" = [2e-4, 1e-3]
"optimizer.discriminator.lr" = [2e-4, 1e-3]
""")
    plan = plan_sweep(zipped, plugins.registry)
    assert plan.variants == ["lr=0.0002", "lr=0.001"]  # equal G and D values: one token
    assert [r.seed for r in plan.runs] == [0, 0]  # no seeds: run.seed

    named = sweep_file(tmp_path, tiny_recipe, """
[sweep.variants.no_bn]
"generator.batchnorm" = false
"discriminator.batchnorm" = false
[sweep.axes]
"loss.use" = ["bce", "hinge"]
""")
    plan = plan_sweep(named, plugins.registry)
    assert plan.variants == ["base_use=bce", "base_use=hinge", "no_bn_use=bce",
                             "no_bn_use=hinge"]
    hinge = next(r for r in plan.runs if r.variant == "no_bn_use=hinge").recipe
    assert hinge["loss"].name == "ganforge:hinge" and hinge["loss"].params.margin == 1.0
    assert hinge["generator"].params.batchnorm is False


def test_variant_ids_disambiguate() -> None:
    assert variant_id({"optimizer.generator.lr": 1e-3, "optimizer.discriminator.lr": 2e-4}) \
        == "generator.lr=0.001_discriminator.lr=0.0002"
    assert variant_id({"generator.batchnorm": False}) == "batchnorm=false"
    assert variant_id({"x.betas": [0.5, 0.999]}) == "betas=0.5-0.999"


def test_every_variant_validated_before_running(plugins, tiny_recipe: Path,
                                                tmp_path: Path) -> None:
    bad = sweep_file(tmp_path, tiny_recipe, """
[sweep.axes]
"optimizer.generator.lr" = [2e-4, -1.0]
"generator.prior" = ["uniform", "gaussian"]
[sweep.variants.typo]
"generator.widht" = 3
""")
    with pytest.raises(RecipeError) as info:
        plan_sweep(bad, plugins.registry, out=tmp_path / "out")
    problems = [f"{p}: {m}" for p, m in info.value.problems]
    assert "variant 'base_lr=0.0002_prior=gaussian': $.generator.prior: 'prior' must be in " \
           "['uniform', 'normal'] (got 'gaussian')" in problems
    assert any(p.startswith("variant 'base_lr=-1_prior=uniform': $.optimizer.generator.lr")
               for p in problems)
    assert any("variant 'typo_" in p and "$.generator.widht: unknown key, did you mean "
               "'width'?" in p for p in problems)
    assert not (tmp_path / "out").exists()  # nothing ran
    for text, message in [("[sweep]\nmode = 'cross'\n", "'mode' must be in"),
                          ("[sweep]\n", "needs [sweep.axes]"),
                          ("[sweep]\nmode='zip'\n[sweep.axes]\n'run.seed' = [1, 2]\n"
                           "'generator.prior' = ['normal']\n", "lists of one length"),
                          ("[sweep.axes]\n'generator.prior' = 'normal'\n", "non-empty list")]:
        with pytest.raises(RecipeError, match=message.replace("[", r"\[")):
            plan_sweep(sweep_file(tmp_path, tiny_recipe, text), plugins.registry)
    with pytest.raises(RecipeError, match="no \\[sweep\\] table"):
        plan_sweep(tiny_recipe, plugins.registry)


SMALL = """
[run]
steps = 4
checkpoint_every = 2
sample_every = 2
log_every = 2
[eval]
every = 2
[eval.metrics.fid]
use = "fid"
extractor = "pixels"
n_fake = 16
n_real = 24
[sweep]
seeds = [0, 1]
[sweep.variants.no_bn]
"generator.batchnorm" = false
"discriminator.batchnorm" = false
"""


def test_ablate_runs_collects_and_reports(tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = sweep_file(tmp_path, tiny_recipe, SMALL)
    out = tmp_path / "sweep"
    dry = CliRunner().invoke(app, ["ablate", str(recipe), "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "no_bn" in dry.output and "generator.batchnorm: true -> false" in dry.output
    assert not out.exists()
    result = CliRunner().invoke(app, ["ablate", str(recipe), "--out", str(out), "--report"])
    assert result.exit_code == 0, result.output
    assert "[4/4] finished no_bn seed 1" in result.output
    assert "no complete checkpoint" not in result.output  # fresh runs are simply started
    for run in ("base/seed-0", "base/seed-1", "no_bn/seed-0", "no_bn/seed-1"):
        assert (out / run / "done.json").exists()
        assert (out / run / "checkpoints" / "step-0000004.safetensors").exists()
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("base", "0"), ("base", "1"), ("no_bn", "0"), ("no_bn", "1")]
    assert json.loads(rows[2]["overrides"]) == {"generator.batchnorm": False,
                                                "discriminator.batchnorm": False}
    for row in rows:
        assert float(row["fid_final"]) > 0 and float(row["fid_best"]) <= float(row["fid_final"])
        assert float(row["images_per_s"]) > 0 and float(row["elapsed_s"]) > 0
    jsonl = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(jsonl) == 4 and jsonl[0]["step"] == 4
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [(s["variant"], s["seeds"]) for s in summary] == [("base", "2"), ("no_bn", "2")]
    mean = (float(rows[0]["fid_final"]) + float(rows[1]["fid_final"])) / 2
    assert float(summary[0]["fid_final_mean"]) == pytest.approx(mean)
    assert float(summary[0]["fid_final_std"]) > 0
    table = (out / "summary.md").read_text().splitlines()
    assert table[0] == "| variant | seeds | fid |"
    assert table[2] == (f"| base | 2 | {float(summary[0]['fid_final_mean']):.4g} ± "
                        f"{float(summary[0]['fid_final_std']):.2g} |")
    with Image.open(out / "samples.png") as sheet:
        assert sheet.width > 2 * 32 and sheet.height > 32
    with Image.open(out / "curves.png") as curves:
        assert curves.width > 500


def test_interrupted_sweep_finishes_without_redoing(plugins, tiny_recipe: Path,
                                                   tmp_path: Path, monkeypatch) -> None:
    from ganforge.sweep import runner

    recipe = sweep_file(tmp_path, tiny_recipe, SMALL)
    plan = plan_sweep(recipe, plugins.registry, out=tmp_path / "sweep")
    trained: list[str] = []
    real_train = runner._train_one

    def crash_on_third(recipe_toml, run_dir, device, threads):
        trained.append(run_dir)
        if len(trained) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third run
        return real_train(recipe_toml, run_dir, device, threads)

    monkeypatch.setattr(runner, "_train_one", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_plan(plan)
    done = {p.parent.relative_to(tmp_path / "sweep").as_posix()
            for p in (tmp_path / "sweep").rglob("done.json")}
    assert done == {"base/seed-0", "base/seed-1"}
    # Half a run is left behind, with a checkpoint at step 2: it must resume, not restart.
    real_train(plan.runs[2].recipe.to_toml().replace("steps = 4", "steps = 2"),
               str(plan.runs[2].run_dir), None, 0)
    (plan.runs[2].run_dir / "done.json").unlink()
    trained.clear()
    monkeypatch.setattr(runner, "_train_one", lambda *a: (trained.append(a[1]),
                                                          real_train(*a))[1])
    outcomes = run_plan(plan)
    assert [o.status for o in outcomes] == ["skipped", "skipped", "finished", "finished"]
    assert trained == [str(plan.runs[2].run_dir), str(plan.runs[3].run_dir)]
    steps = [json.loads(x)["step"] for x in
             (plan.runs[2].run_dir / "metrics.jsonl").read_text().splitlines()
             if "loss_d" in x]
    assert steps == [2, 4]  # resumed at step 2, not started again


def test_parallel_jobs(tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = sweep_file(tmp_path, tiny_recipe, SMALL.replace("seeds = [0, 1]", "seeds = [0]"))
    result = CliRunner().invoke(app, ["ablate", str(recipe), "--out", str(tmp_path / "p"),
                                      "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p").rglob("done.json"))) == 2


def test_shipped_ablation_studies_are_valid(plugins) -> None:
    studies = sorted((ROOT / "recipes" / "ablations").glob("*.toml"))
    names = {p.stem for p in studies}
    assert {"batchnorm", "beta1", "learning_rate", "prior"} <= names
    for path in studies:
        if path.stem == "common":
            continue
        plan = plan_sweep(path, plugins.registry)
        assert len(plan.variants) >= 2, path


def test_a_run_stopped_by_ctrl_c_is_not_marked_done(plugins, tiny_recipe: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    import ganforge.training as training
    from ganforge.sweep import runner

    recipe = sweep_file(tmp_path, tiny_recipe, SMALL)
    plan = plan_sweep(recipe, plugins.registry, out=tmp_path / "sweep")
    real_train = training.train

    def interrupted_train(recipe, plugins, run_dir, **kwargs):
        result = real_train(recipe.__class__(run=attrs.evolve(recipe.run, steps=2),
                                             components=recipe.components,
                                             source=recipe.source, eval=recipe.eval),
                            plugins, run_dir, **kwargs)
        return attrs.evolve(result, interrupted=True)

    monkeypatch.setattr(training, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        runner._train_one(plan.runs[0].recipe.to_toml(), str(plan.runs[0].run_dir), None, 0)
    assert not (plan.runs[0].run_dir / "done.json").exists()
    assert runner.run_state(plan.runs[0]) == "resumable"
