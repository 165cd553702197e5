"""Prepared datasets: decode once, resume an interrupted preparation, read at memory speed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets.prepared import prepare_dataset, uint8_item
from ganforge.errors import DataError, UsageError
from ganforge.recipe import load_recipe
from ganforge.training import train
from tests.lsun_data import make_lsun


def lsun_source(root: Path) -> dict:
    return {"use": "lsun", "root": str(root), "image_size": 32, "on_error": "skip"}


def build(plugins, table: dict):
    return plugins.registry.create("dataset", table["use"],
                                   {k: v for k, v in table.items() if k != "use"})


def test_prepared_images_equal_the_decoded_ones(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", webp=6, jpeg=6)
    source = lsun_source(tmp_path / "lsun")
    dataset = build(plugins, source)
    report = prepare_dataset(dataset, source, tmp_path / "prep", shard_size=5, workers=0,
                             progress=False)
    assert (report.count, report.skipped, report.shards_written) == (12, 3, 3)
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["source"] == source and manifest["count"] == 12
    assert manifest["image_spec"] == {"channels": 3, "size": 32}
    good = [uint8_item(dataset, i) for i in range(len(dataset))]
    good = torch.stack([g for g in good if isinstance(g, torch.Tensor)])
    for in_memory in ("none", "host", "device"):
        prepared = plugins.registry.create("dataset", "prepared", {
            "root": str(tmp_path / "prep"), "image_size": 32, "in_memory": in_memory})
        assert len(prepared) == 12 and prepared.residency == in_memory
        got = torch.stack([prepared.uint8_item(i) for i in range(12)])
        assert torch.equal(got, good)  # bit-exact, bad images left out
        assert torch.equal(prepared[3], good[3].float() / 127.5 - 1)
    skipped = [json.loads((tmp_path / "prep" / f"shard-{n:05d}.json").read_text())["skipped"]
               for n in range(3)]
    assert sorted(s["key"] for batch in skipped for s in batch) == [
        "bedroom_train:zz-bad-garbage", "bedroom_train:zz-bad-truncated",
        "bedroom_train:zz-bad-zero-byte"]


class Interrupting(torch.utils.data.Dataset):
    """Wraps a dataset and raises KeyboardInterrupt at one index, like a Ctrl-C."""

    def __init__(self, inner, at: int) -> None:
        self.inner, self.at = inner, at
        self.image_spec = inner.image_spec

    def __len__(self) -> int:
        return len(self.inner)

    def uint8_item(self, index: int):
        if index == self.at:
            raise KeyboardInterrupt
        return uint8_item(self.inner, index)


def test_interrupted_preparation_resumes(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 23, "image_size": 16, "channels": 3}
    dataset = build(plugins, source)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(Interrupting(dataset, 13), source, tmp_path / "prep", shard_size=5,
                        workers=0, progress=False)
    assert not (tmp_path / "prep" / "manifest.json").exists()
    assert sorted(p.name for p in (tmp_path / "prep").glob("shard-*.json")) == [
        "shard-00000.json", "shard-00001.json"]
    with pytest.raises(DataError, match="unfinished preparation"):
        plugins.registry.create("dataset", "prepared", {"root": str(tmp_path / "prep"),
                                                        "image_size": 16})
    report = prepare_dataset(dataset, source, tmp_path / "prep", shard_size=5, workers=0,
                             progress=False)
    assert (report.shards_reused, report.shards_written, report.count) == (2, 3, 23)
    straight = prepare_dataset(dataset, source, tmp_path / "straight", shard_size=5,
                               workers=2, progress=False)
    assert straight.count == 23
    for n in range(5):
        a = np.load(tmp_path / "prep" / f"shard-{n:05d}.npy")
        b = np.load(tmp_path / "straight" / f"shard-{n:05d}.npy")
        assert np.array_equal(a, b)


def test_other_source_in_the_same_folder_is_refused(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 8, "image_size": 16, "channels": 3}
    prepare_dataset(build(plugins, source), source, tmp_path / "prep", workers=0,
                    progress=False)
    other = {**source, "image_size": 32}
    with pytest.raises(UsageError, match="another dataset or size"):
        prepare_dataset(build(plugins, other), other, tmp_path / "prep", workers=0,
                        progress=False)


def test_wrong_size_is_refused(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 8, "image_size": 16, "channels": 3}
    prepare_dataset(build(plugins, source), source, tmp_path / "prep", workers=0,
                    progress=False)
    with pytest.raises(DataError, match="holds 3x16x16 images but the recipe asks for 3x64x64"):
        plugins.registry.create("dataset", "prepared", {"root": str(tmp_path / "prep"),
                                                        "image_size": 64})


def test_training_on_a_device_resident_set_resumes_exactly(plugins, tiny_recipe: Path,
                                                           tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 40, "image_size": 32, "channels": 3}
    prepare_dataset(build(plugins, source), source, tmp_path / "prep", workers=0,
                    progress=False)
    sets = ["dataset.use=prepared", f"dataset.root={tmp_path / 'prep'}",
            "dataset.image_size=32", "dataset.in_memory=device", "dataset.hflip=true"]

    def run(out, *extra, resume=False):
        recipe = load_recipe(tiny_recipe, plugins.registry, [*sets, *extra])
        return train(recipe, plugins, tmp_path / out, resume=resume, progress=False)

    straight = run("a")
    run("b", "run.steps=4")
    resumed = run("b", resume=True)
    a, b = load_file(straight.checkpoint), load_file(resumed.checkpoint)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_data_cli(tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", webp=4, jpeg=4)
    runner = CliRunner()
    recipe = Path(__file__).parent.parent / "recipes" / "dcgan_lsun.toml"
    result = runner.invoke(app, ["data", "inspect", str(recipe), "--set",
                                 f"dataset.root={tmp_path / 'lsun'}", "--set",
                                 "dataset.image_size=32", "--scan", "0", "--n", "4",
                                 "--out", str(tmp_path / "real.png")])
    assert result.exit_code == 0, result.output
    assert "dataset 'lsun': 11 images, 3x32x32" in result.output
    assert "decoded 11: 3 bad" in result.output and "zz-bad-truncated" in result.output
    with Image.open(tmp_path / "real.png") as grid:
        assert grid.size == (2 * 32 + 3 * 2,) * 2
    result = runner.invoke(app, ["data", "prepare", str(recipe), "--out", str(tmp_path / "p"),
                                 "--set", f"dataset.root={tmp_path / 'lsun'}",
                                 "--set", "dataset.image_size=32",
                                 "--set", "dataset.on_error=skip", "-j", "0"])
    assert result.exit_code == 0, result.output
    assert "prepared 8 images (3x32x32)" in result.output and "3 skipped" in result.output
    result = runner.invoke(app, ["data", "prepare", "synthetic", "--out", str(tmp_path / "s"),
                                 "--set", "count=10", "--set", "image_size=16", "-j", "0"])
    assert result.exit_code == 0, result.output
    assert "prepared 10 images (3x16x16)" in result.output
    result = runner.invoke(app, ["data", "prepare", "synthetc", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "did you mean 'synthetic'" in result.output


def test_image_folder_skip_policy_in_a_run(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            folder / f"{i:02d}.png")
    (folder / "05-broken.jpg").write_bytes(b"\xff\xd8\xff broken jpeg")
    recipe = load_recipe(tiny_recipe, plugins.registry, [
        "dataset.use=image_folder", f"dataset.root={folder}", "dataset.image_size=32",
        "dataset.on_error=skip", "run.batch_size=13", "run.steps=2"])
    result = train(recipe, plugins, tmp_path / "run", progress=False)
    assert result.skipped_images == 2  # one bad file, seen once per step (13 of 13 each step)
    lines = (tmp_path / "run" / "skipped.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]
    assert all("05-broken.jpg" in json.loads(x)["key"] for x in lines)


def test_resume_is_exact_across_batches_that_were_all_skipped(plugins, tiny_recipe: Path,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(
            folder / f"good{i}.png")
        (folder / f"bad{i}.jpg").write_bytes(b"not a jpeg")
    sets = ["dataset.use=image_folder", f"dataset.root={folder}", "dataset.image_size=32",
            "dataset.on_error=skip", "run.batch_size=2"]

    def run(out, *extra, resume=False):
        recipe = load_recipe(tiny_recipe, plugins.registry, [*sets, *extra])
        return train(recipe, plugins, tmp_path / out, resume=resume, progress=False)

    straight = run("a")
    assert straight.skipped_images > 0
    run("b", "run.steps=3")
    resumed = run("b", resume=True)
    a, b = load_file(straight.checkpoint), load_file(resumed.checkpoint)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
