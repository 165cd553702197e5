"""``ganforge eval``/``probe`` on a checkpoint from someone else (issue 11, item 16): the
dataset its embedded recipe names never downloads, can be pointed elsewhere with
``--set dataset.KEY=VALUE``, and the command says which folder it reads."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.recipe import load_recipe
from ganforge.training import train

PIXELS = ["--extractor", "pixels", "--n", "8", "--n-real", "6", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny trained checkpoint (synthetic data, 32x32 RGB)."""
    from ganforge import load_plugins
    from tests.conftest import TINY_RECIPE

    folder = tmp_path_factory.mktemp("untrusted")
    recipe_path = folder / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE)
    plugins = load_plugins()
    recipe = load_recipe(recipe_path, plugins.registry, ["run.steps=2"])
    return train(recipe, plugins, folder / "run", progress=False).checkpoint


def with_recipe(checkpoint: Path, out: Path, dataset: dict[str, Any]) -> Path:
    """A copy of ``checkpoint`` whose embedded recipe has ``dataset`` as its [dataset]
    table, as anyone can write one."""
    with safe_open(str(checkpoint), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    table = tomllib.loads(metadata["ganforge.recipe"])
    table["dataset"] = dataset
    metadata["ganforge.recipe"] = tomli_w.dumps(table)
    save_file(tensors, out, metadata=metadata)
    return out


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(g.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every download torchvision's MNIST is asked for (none is carried out)."""
    import torchvision.datasets as tvd

    calls: list[str] = []
    monkeypatch.setattr(tvd.MNIST, "download", lambda self: calls.append(str(self.root)))
    return calls


@pytest.mark.parametrize("command", [["eval", *PIXELS], ["probe", "-l", "1", "--device", "cpu"]])
def test_a_checkpoint_cannot_make_eval_or_probe_download(
        checkpoint: Path, tmp_path: Path, downloads: list[str], command: list[str]) -> None:
    target = tmp_path / "fetched"
    hostile = with_recipe(checkpoint, tmp_path / "hostile.safetensors", {
        "use": "mnist", "root": str(target), "download": True, "image_size": 32, "channels": 3})
    result = CliRunner().invoke(app, [command[0], str(hostile), *command[1:]])
    assert result.exit_code == 2, result.output
    (line,) = errors(result.output)
    assert str(target) in line and "--set dataset.root=PATH" in line
    assert downloads == [] and not target.exists()
    assert (f"reading dataset 'ganforge:mnist' at {target} (from the checkpoint's recipe)"
            in result.output)
    # A folder that is there but holds no MNIST: still no download, the same advice.
    target.mkdir()
    result = CliRunner().invoke(app, [command[0], str(hostile), *command[1:]])
    assert result.exit_code == 2, result.output
    (line,) = errors(result.output)
    assert "no MNIST files" in line and "--set dataset.root=PATH" in line
    assert downloads == [] and list(target.iterdir()) == []


def test_eval_reads_the_folder_set_on_the_command_line(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moved = with_recipe(checkpoint, tmp_path / "moved.safetensors", {
        "use": "image_folder", "root": str(tmp_path / "gone"), "image_size": 32})
    result = CliRunner().invoke(app, ["eval", str(moved), *PIXELS])
    assert result.exit_code == 2, result.output
    (line,) = errors(result.output)
    assert f"{tmp_path / 'gone'} does not exist" in line and "--set dataset.root=PATH" in line
    write_images(tmp_path / "faces", 6)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", str(moved), *PIXELS, "--json",
                                      "--set", "dataset.root=faces"])
    assert result.exit_code == 0, result.output
    root = str((tmp_path / "faces").resolve())
    assert f"reading dataset 'ganforge:image_folder' at {root} (from --set)" in result.stderr
    protocol = json.loads(result.stdout)["protocol"]
    assert protocol["dataset"]["root"] == "faces"
    assert protocol["reference"]["roots"] == {"root": root}
    table = CliRunner().invoke(app, ["eval", str(moved), *PIXELS,
                                     "--set", "dataset.root=faces"])
    assert table.exit_code == 0, table.output
    assert protocol["reference"]["key"] in table.stdout and root in table.stdout


def test_only_the_dataset_can_be_set_and_never_to_download(
        checkpoint: Path, tmp_path: Path, downloads: list[str]) -> None:
    for command in (["eval", *PIXELS], ["probe", "-l", "1", "--device", "cpu"]):
        result = CliRunner().invoke(app, [command[0], str(checkpoint), *command[1:],
                                          "--set", "generator.width=64"])
        assert result.exit_code == 2, result.output
        (line,) = errors(result.output)
        assert "only dataset.KEY=VALUE" in line
        result = CliRunner().invoke(app, [command[0], str(checkpoint), *command[1:],
                                          "--set", "dataset.use=mnist",
                                          "--set", f"dataset.root={tmp_path}",
                                          "--set", "dataset.channels=3",
                                          "--set", "dataset.download=true"])
        assert result.exit_code == 2, result.output
        (line,) = errors(result.output)
        assert "never downloads" in line
    assert downloads == []


def test_probe_sets_the_checkpoints_dataset(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["probe", str(checkpoint), "-l", "2", "--device", "cpu",
                                      "--test-size", "40", "--json",
                                      "--set", "dataset.use=digits",
                                      "--set", "dataset.channels=3"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dataset"] == {"use": "ganforge:digits", "image_size": 32, "channels": 3,
                               "in_memory": "auto"}
    assert [r["n_train"] for r in data["results"]] == [20, 20]
