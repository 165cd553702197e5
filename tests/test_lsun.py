"""The ``lsun`` dataset on generated LSUN-format lmdb databases."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets import lmdb_index
from ganforge.datasets.decoding import BadImage
from ganforge.datasets.policy import Skipped, collate_images
from ganforge.errors import DataError
from tests.lsun_data import add_entry, make_lsun

ROOT = Path(__file__).parent.parent


def lsun(plugins, root: Path, **params):
    return plugins.registry.create("dataset", "lsun", {"root": str(root), "image_size": 32,
                                                       **params})


def test_reads_webp_and_jpeg(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, webp=5, jpeg=5, bad=False)
    dataset = lsun(plugins, tmp_path)
    assert len(dataset) == 10
    for i in range(10):
        image = dataset[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1 and image.std() > 0.01


def test_bad_entries_fail_naming_the_key(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, webp=2, jpeg=2)
    dataset = lsun(plugins, tmp_path)
    assert len(dataset) == 7
    bad = [i for i in range(7) if dataset.locate(i)[1].startswith(b"zz-bad")]
    assert len(bad) == 3
    for i in bad:
        with pytest.raises(BadImage, match=r"bedroom_train:zz-bad-"):
            dataset[i]


def test_skip_policy_marks_and_collate_sets_aside(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, webp=2, jpeg=2)
    dataset = lsun(plugins, tmp_path, on_error="skip")
    items = [dataset[i] for i in range(len(dataset))]
    skipped = [item for item in items if isinstance(item, Skipped)]
    assert sorted(s.key for s in skipped) == [
        "bedroom_train:zz-bad-garbage", "bedroom_train:zz-bad-truncated",
        "bedroom_train:zz-bad-zero-byte"]
    batch = collate_images(items)
    assert batch.images.shape == (4, 3, 32, 32) and len(batch.skipped) == 3


def test_index_is_cached_beside_the_data_and_reused(plugins, tmp_path: Path,
                                                    monkeypatch) -> None:
    path = make_lsun(tmp_path, webp=3, jpeg=3, bad=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    first = lsun(plugins, tmp_path)
    cache = tmp_path / ".ganforge-index" / "bedroom_train_lmdb"
    assert (cache / "index.json").exists() and (cache / "keys.npy").exists()
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing in the current directory

    def must_not_walk(*args, **kwargs):
        raise AssertionError("the key index was rebuilt although the lmdb is unchanged")

    with monkeypatch.context() as patch:
        patch.setattr(lmdb_index, "_read_keys", must_not_walk)
        again = lsun(plugins, tmp_path)
    assert [again.locate(i) for i in range(6)] == [first.locate(i) for i in range(6)]
    lmdb_index.close_lmdb_handles()  # lmdb: one handle per database per process
    add_entry(path, b"0000-new")  # the database changes: the cache is stale
    grown = lsun(plugins, tmp_path)
    assert len(grown) == 7 and grown.locate(0)[1] == b"0000-new"


def test_read_only_data_folder_uses_the_user_cache(plugins, tmp_path: Path,
                                                   monkeypatch) -> None:
    data = tmp_path / "data"
    make_lsun(data, webp=2, jpeg=2, bad=False)
    (data / ".ganforge-index").write_text("a file where the cache folder would go")
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))
    dataset = lsun(plugins, data)
    assert len(dataset) == 4
    assert list((tmp_path / "cache" / "lmdb-index").glob("bedroom_train_lmdb-*/index.json"))


def test_categories_concatenate_and_limit(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, "bedroom_train", webp=3, jpeg=0, bad=False, seed=1)
    make_lsun(tmp_path, "church_outdoor_train", webp=2, jpeg=2, bad=False, seed=2)
    both = lsun(plugins, tmp_path, categories=["bedroom_train", "church_outdoor_train"])
    assert len(both) == 7
    assert [both.locate(i)[0] for i in range(7)] == [0, 0, 0, 1, 1, 1, 1]
    assert len(lsun(plugins, tmp_path, categories=["church_outdoor_train"], limit=2)) == 2


def test_missing_data_names_the_path(plugins, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no LSUN lmdb at '.*kitchen_train_lmdb'"):
        lsun(plugins, tmp_path, categories=["kitchen_train"])


def test_spawn_workers(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, webp=4, jpeg=4, bad=False)
    dataset = lsun(plugins, tmp_path, on_error="skip")
    expected = torch.stack([dataset[i] for i in range(len(dataset))])
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_images,
                        multiprocessing_context=multiprocessing.get_context("spawn"))
    got = torch.cat([batch.images for batch in loader])
    assert torch.equal(got, expected)


def test_dcgan_lsun_recipe_end_to_end(tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", webp=10, jpeg=10)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", str(ROOT / "recipes" / "dcgan_lsun.toml"), "--out", str(out), "--quiet",
        "--set", f"dataset.root={tmp_path / 'lsun'}", "--set", "dataset.on_error=skip",
        "--set", "run.steps=4", "--set", "run.batch_size=8", "--set", "run.num_workers=2",
        "--set", "generator.width=4", "--set", "discriminator.width=4",
        "--set", "dataset.hflip=true"])
    assert result.exit_code == 0, result.output
    assert "finished at step 4" in result.output
    assert "bad images skipped" in result.output
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert {s["key"] for s in skipped} <= {"bedroom_train:zz-bad-garbage",
                                          "bedroom_train:zz-bad-truncated",
                                          "bedroom_train:zz-bad-zero-byte"}
    assert len(skipped) >= 1
    assert (out / "checkpoints" / "step-0000004.safetensors").exists()


def test_fail_policy_stops_the_run_with_one_line(tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", webp=4, jpeg=4)
    result = CliRunner().invoke(app, [
        "run", str(ROOT / "recipes" / "dcgan_lsun.toml"), "--out", str(tmp_path / "run"),
        "--quiet", "--set", f"dataset.root={tmp_path / 'lsun'}", "--set", "run.steps=3",
        "--set", "run.batch_size=11", "--set", "run.num_workers=0",
        "--set", "generator.width=4", "--set", "discriminator.width=4"])
    assert result.exit_code == 1
    assert result.output.startswith("error: bedroom_train:zz-bad-"), result.output
    assert len(result.output.strip().splitlines()) == 1
