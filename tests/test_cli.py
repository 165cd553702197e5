"""Every command through Typer's runner, plus the one-line error and exit-code contract."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from ganforge.cli import app

ROOT = Path(__file__).parent.parent


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_version_and_help(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.output.strip() == "ganforge 0.1.0"
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("run", "resolve", "components", "plugins", "check", "sample"):
        assert command in result.output


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from ganforge.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_components_list_and_show(cli) -> None:
    result = cli("components")
    assert result.exit_code == 0
    for name in ("dcgan", "bce", "adam", "digits", "synthetic", "image_folder"):
        assert name in result.output
    result = cli("components", "dataset", "--pattern", "d*")
    assert result.exit_code == 0 and "digits" in result.output and "synthetic" not in result.output
    result = cli("components", "show", "generator", "dcgan")
    assert result.exit_code == 0
    for piece in ("latent_dim", "100", "width", "prior", "'uniform'", "size of z",
                  "ganforge-dcgan"):
        assert piece in result.output
    result = cli("components", "show", "generator", "dcgna")
    assert result.exit_code == 2 and "did you mean 'dcgan'" in result.output


def test_plugins_table(cli) -> None:
    result = cli("plugins")
    assert result.exit_code == 0
    assert "builtins" in result.output and "ganforge-dcgan" in result.output
    assert "loaded" in result.output


def test_broken_plugin_warns_but_commands_work(cli, fake_dist) -> None:
    fake_dist("ganforge-broken", "broken_plugin", "raise ImportError('boom')")
    result = cli("components", "loss")
    assert result.exit_code == 0 and "bce" in result.output
    assert "plugin 'broken' (ganforge-broken 1.2.3) failed and was skipped" in result.output
    result = cli("plugins")
    assert "failed" in result.output and "ImportError: boom" in result.output


def test_resolve_prints_flat_toml(cli, tiny_recipe: Path) -> None:
    result = cli("resolve", tiny_recipe, "--set", "generator.prior=normal", "-s", "run.seed=3")
    assert result.exit_code == 0
    data = tomllib.loads(result.stdout)
    assert data["generator"]["prior"] == "normal" and data["run"]["seed"] == 3
    assert data["loss"] == {"use": "ganforge:bce"}  # resolved: the qualified name


def test_recipe_errors_are_lines_with_exit_2(cli, tiny_recipe: Path) -> None:
    result = cli("resolve", tiny_recipe, "--set", "generator.widht=3", "--set", "run.steps=0")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"error: {tiny_recipe}: $.run.steps: 'steps' must be > 0: 0",
        f"error: {tiny_recipe}: $.generator.widht: unknown key, did you mean 'width'?",
    ]
    assert "Traceback" not in result.output
    missing = cli("resolve", "nope.toml")
    assert missing.exit_code == 2 and "recipe file not found" in missing.output


def test_debug_shows_the_traceback(tiny_recipe: Path) -> None:
    result = CliRunner().invoke(app, ["--debug", "resolve", str(tiny_recipe),
                                      "--set", "run.steps=0"])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "RecipeError"


def test_check_prints_the_audit(cli, tiny_recipe: Path) -> None:
    result = cli("check", tiny_recipe)
    assert result.exit_code == 0
    assert "recipe ok" in result.output and "12 passed, 0 failed" in result.output
    result = cli("check", tiny_recipe, "--set", "generator.batchnorm=false",
                 "--set", "discriminator.batchnorm=false")
    assert result.exit_code == 0
    assert "10 passed, 2 failed" in result.output and "FAIL" in result.output


def test_run_resume_and_sample(cli, tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("run", tiny_recipe, "--out", out, "--set", "run.steps=3", "--quiet")
    assert result.exit_code == 0, result.output
    assert "finished at step 3" in result.output
    again = cli("run", tiny_recipe, "--out", out, "--quiet")
    assert again.exit_code == 2 and "already holds a run" in again.output
    resumed = cli("run", tiny_recipe, "--out", out, "--resume", "--quiet")
    assert resumed.exit_code == 0 and "finished at step 6" in resumed.output
    checkpoint = out / "checkpoints" / "step-0000006.safetensors"
    assert "generator/main.0.weight" in load_file(checkpoint)
    grid = tmp_path / "grid.png"
    result = cli("sample", checkpoint, "--n", "9", "--out", grid, "--seed", "1")
    assert result.exit_code == 0, result.output
    with Image.open(grid) as image:
        assert image.size == (3 * 32 + 4 * 2,) * 2  # 3x3 grid of 32px images, 2px padding
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    result = cli("sample", bad)
    assert result.exit_code == 2 and "bad.safetensors" in result.output


def test_run_default_directory_is_runs_recipe_name(cli, tiny_recipe: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("run", tiny_recipe, "--set", "run.steps=1", "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "tiny" / "checkpoints" / "step-0000001.safetensors").exists()


def test_missing_lsun_data_is_one_line(cli, tmp_path: Path) -> None:
    result = cli("run", ROOT / "recipes" / "dcgan_lsun.toml", "--set",
                 f"dataset.root={tmp_path}", "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert result.output.startswith("error: lsun: no LSUN lmdb at")
    assert len(result.output.strip().splitlines()) == 1


def test_brackets_in_errors_print_literally(cli, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[generator]\nuse = "dcgan"\n[discriminator]\nuse = "dcgan"\n')
    result = cli("resolve", recipe)
    assert result.exit_code == 2
    assert "missing table [dataset] (add one with use = " in result.output


@pytest.mark.parametrize(("error", "code", "text"), [
    ("TrainingError", 1, "error: the generator diverged"),
    ("DataError", 1, "error: the generator diverged"),
    ("UsageError", 2, "error: the generator diverged"),
    ("CheckpointError", 2, "error: the generator diverged"),
    ("RecipeError", 2, "error: $.x: the generator diverged"),
    ("KeyboardInterrupt", 130, "interrupted"),
    ("RuntimeError", 1, "error: internal error: RuntimeError: the generator diverged (run "
                        "with --debug for the traceback)"),
])
def test_exit_code_contract(cli, tiny_recipe: Path, tmp_path: Path, monkeypatch,
                            error: str, code: int, text: str) -> None:
    import builtins

    import ganforge.errors as errors
    import ganforge.training as training

    cls = getattr(errors, error, None) or getattr(builtins, error)

    def failing_train(*args, **kwargs):
        if cls is errors.RecipeError:
            raise cls([("$.x", "the generator diverged")])
        raise cls("the generator diverged")

    monkeypatch.setattr(training, "train", failing_train)
    result = cli("run", tiny_recipe, "--out", tmp_path / "run")
    assert result.exit_code == code
    assert text in result.output and "Traceback" not in result.output
