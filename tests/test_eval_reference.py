"""The FID reference cache is keyed by what the real images are, not by how the recipe
spells their folder (issue 11, item 7), and a stop request ends an evaluation between two
batches without caching anything partial (item 17). A stand-in extractor is used."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.evaluation import EvaluationInterrupted
from ganforge.evaluation.evaluator import Evaluator
from ganforge.evaluation.features import PixelExtractor
from ganforge.evaluation.reference import content_fingerprint, dataset_identity

SIZE = 8


class CountingExtractor(PixelExtractor):
    """Pixels as features, counting the images it sees."""

    def __init__(self) -> None:
        self.images_seen = 0

    def __call__(self, images):
        self.images_seen += images.shape[0]
        return super().__call__(images)


class Noise(torch.nn.Module):
    """A 'generator' of seeded noise images (RGB, SIZE x SIZE)."""

    latent_dim = 1

    def sample_latent(self, n, generator, device=None):
        return torch.rand(n, 3 * SIZE * SIZE, generator=generator)

    def forward(self, z):
        return z.view(-1, 3, SIZE, SIZE) * 2 - 1


class StopAfter:
    """A stop request that arrives after ``k`` questions (deterministic: no signals)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.k


def write_images(folder: Path, count: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    for i in range(count):
        pixels = g.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def evaluate_folder(plugins, root: str, cache: Path):
    """One fresh evaluator (dataset opened now) on the folder ``root``: (fid, extractor)."""
    registry = plugins.registry
    metrics = {"fid": ("fid", registry.create("metric", "fid", {
        "extractor": "pixels", "n_fake": 8, "n_real": 6, "batch_size": 4}))}
    table = {"use": "image_folder", "root": root, "image_size": SIZE}
    dataset = registry.create("dataset", "image_folder", {"root": root, "image_size": SIZE})
    extractor = CountingExtractor()
    evaluator = Evaluator(metrics, dataset, table, torch.device("cpu"),
                          extractor_factory=lambda *a: extractor, cache_dir=cache)
    (result,) = evaluator.run(Noise())
    return result, extractor


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*")) if cache.exists() else []


def test_one_relative_root_from_two_folders_is_two_references(
        plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, seed in (("a", 0), ("b", 1)):
        write_images(tmp_path / name / "imgs", 6, seed)
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path / "a")
    first, _ = evaluate_folder(plugins, "imgs", cache)
    monkeypatch.chdir(tmp_path / "b")
    second, extractor = evaluate_folder(plugins, "imgs", cache)
    # The second folder's images were read (8 fake + 6 real), not the first's statistics.
    assert extractor.images_seen == 8 + 6
    assert len(entries(cache)) == 2
    assert first.value != second.value
    a, b = (str((tmp_path / name / "imgs").resolve()) for name in ("a", "b"))
    assert first.reference["roots"] == {"root": a}
    assert second.reference["roots"] == {"root": b}
    assert first.reference["key"] != second.reference["key"]
    # The key is recorded with the score: its protocol, and the one-line summary.
    assert second.protocol["reference"] == second.reference
    assert f"reference {second.reference['key']} at {b}" in second.summary()
    assert (cache / f"{second.reference['key']}.safetensors").is_file()


def test_touching_or_replacing_an_image_invalidates_the_reference(
        plugins, tmp_path: Path) -> None:
    root, cache = tmp_path / "imgs", tmp_path / "cache"
    write_images(root, 6, 0)
    first, _ = evaluate_folder(plugins, str(root), cache)
    again, extractor = evaluate_folder(plugins, str(root), cache)
    assert extractor.images_seen == 8 and again.reference == first.reference  # from the cache
    stat = (root / "0.png").stat()
    os.utime(root / "0.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touch
    touched, extractor = evaluate_folder(plugins, str(root), cache)
    assert extractor.images_seen == 8 + 6
    assert touched.reference["key"] != first.reference["key"]
    # Replaced in place by another image (copied over it: a new modification time).
    write_images(tmp_path / "other", 6, 7)
    stat = (root / "1.png").stat()
    (root / "1.png").write_bytes((tmp_path / "other" / "1.png").read_bytes())
    os.utime(root / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    replaced, extractor = evaluate_folder(plugins, str(root), cache)
    assert extractor.images_seen == 8 + 6
    assert replaced.reference["key"] not in (first.reference["key"], touched.reference["key"])
    assert replaced.value != touched.value
    assert len(entries(cache)) == 3


def test_lsun_roots_are_fingerprinted_by_their_databases(tmp_path: Path) -> None:
    lmdb = tmp_path / "lsun" / "bedroom_train_lmdb"
    lmdb.mkdir(parents=True)
    (lmdb / "data.mdb").write_bytes(b"x" * 4096)
    table = {"use": "lsun", "root": str(tmp_path / "lsun"), "categories": ["bedroom_train"]}
    before = dataset_identity(table)
    # The key index ganforge writes beside the data is derived from it, not content.
    (tmp_path / "lsun" / ".ganforge-index" / "bedroom_train_lmdb").mkdir(parents=True)
    (tmp_path / "lsun" / ".ganforge-index" / "bedroom_train_lmdb" / "keys.npy").write_bytes(b"k")
    assert dataset_identity(table) == before
    with open(lmdb / "data.mdb", "ab") as f:  # a database grown in place
        f.write(b"y" * 4096)
    grown = dataset_identity(table)
    assert grown["content"] != before["content"]
    assert grown["dataset"]["root"] == str((tmp_path / "lsun").resolve())


def test_built_in_datasets_are_identified_by_their_params(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"use": "digits", "image_size": 32, "channels": 1}
    here = dataset_identity(table)
    monkeypatch.chdir(tmp_path)
    assert dataset_identity(table) == here == {"dataset": table, "content": {}}
    monkeypatch.setenv("HOME", str(tmp_path))
    home = dataset_identity({"use": "image_folder", "root": "~/faces"})
    assert home["dataset"]["root"] == str((tmp_path / "faces").resolve())
    assert home["content"] == {"root": "missing"}


# -- stop requests (item 17) ---------------------------------------------------------------


def digits_evaluator(plugins, cache: Path, extractor: CountingExtractor) -> Evaluator:
    """FID on digits: 30 generated and 40 real images, in batches of 10."""
    registry = plugins.registry
    metrics = {"fid": ("fid", registry.create("metric", "fid", {
        "extractor": "pixels", "n_fake": 30, "n_real": 40, "batch_size": 10}))}
    dataset = registry.create("dataset", "digits", {"image_size": SIZE, "channels": 3})
    table = {"use": "digits", "image_size": SIZE, "channels": 3}
    return Evaluator(metrics, dataset, table, torch.device("cpu"),
                     extractor_factory=lambda *a: extractor, cache_dir=cache)


@pytest.mark.parametrize(("k", "images_seen"), [
    (0, 0),             # asked before the first generated batch
    (2, 20),            # during generation: 2 of 3 generated batches done
    (3 + 2, 30 + 20),   # during the real images: 2 of 4 real batches done
])
def test_a_stop_request_ends_an_evaluation_between_batches_and_caches_nothing(
        plugins, tmp_path: Path, k: int, images_seen: int) -> None:
    cache = tmp_path / "cache"
    extractor = CountingExtractor()
    evaluator = digits_evaluator(plugins, cache, extractor)
    stop = StopAfter(k)
    with pytest.raises(EvaluationInterrupted):
        evaluator.run(Noise(), step=5, should_stop=stop)
    assert stop.calls == k + 1  # it stopped at the first True
    assert extractor.images_seen == images_seen
    assert entries(cache) == []  # no reference, not even a temporary file
    # The same evaluator then runs to the end, and scores as a fresh one does.
    results = {r.label: r.value for r in evaluator.run(Noise(), step=5)}
    assert len(entries(cache)) == 1
    fresh = digits_evaluator(plugins, tmp_path / "fresh", CountingExtractor())
    assert results == {r.label: r.value for r in fresh.run(Noise(), step=5)}


def test_a_stop_request_that_never_comes_changes_nothing(plugins, tmp_path: Path) -> None:
    stop = StopAfter(10**6)
    asked = digits_evaluator(plugins, tmp_path / "a", CountingExtractor())
    plain = digits_evaluator(plugins, tmp_path / "b", CountingExtractor())
    assert [r.value for r in asked.run(Noise(), should_stop=stop)] == [
        r.value for r in plain.run(Noise())]
    assert stop.calls == 3 + 4  # once per batch: 3 generated, 4 real


def test_a_stop_request_ends_the_fingerprinting_of_a_large_folder(
        plugins, tmp_path: Path) -> None:
    root, cache = tmp_path / "imgs", tmp_path / "cache"
    write_images(root, 6, 0)
    for i in range(1500):  # files the walk lists (not images: the dataset passes them over)
        (root / f"note-{i}.txt").touch()
    registry = plugins.registry
    metrics = {"fid": ("fid", registry.create("metric", "fid", {
        "extractor": "pixels", "n_fake": 8, "n_real": 6, "batch_size": 8}))}
    table = {"use": "image_folder", "root": str(root), "image_size": SIZE}
    dataset = registry.create("dataset", "image_folder", {"root": str(root), "image_size": SIZE})
    extractor = CountingExtractor()
    evaluator = Evaluator(metrics, dataset, table, torch.device("cpu"),
                          extractor_factory=lambda *a: extractor, cache_dir=cache)
    stop = StopAfter(1)  # the one generated batch, then a stop during the walk
    with pytest.raises(EvaluationInterrupted):
        evaluator.run(Noise(), should_stop=stop)
    assert stop.calls == 2 and extractor.images_seen == 8 and entries(cache) == []
    assert content_fingerprint(root) == evaluator.identity()["content"]["root"]


def test_real_images_of_a_last_partial_batch_are_kept(plugins, tmp_path: Path) -> None:
    # 6 readable images and one bad one (passed over): the dataset runs out before n_real
    # images with a batch half full, which must still count.
    root = tmp_path / "imgs"
    write_images(root, 6, 0)
    (root / "bad.png").write_bytes(b"not a png")
    registry = plugins.registry
    metrics = {"fid": ("fid", registry.create("metric", "fid", {
        "extractor": "pixels", "n_fake": 8, "n_real": 7, "batch_size": 4}))}
    params = {"root": str(root), "image_size": SIZE, "on_error": "skip"}
    dataset = registry.create("dataset", "image_folder", params)
    extractor = CountingExtractor()
    evaluator = Evaluator(metrics, dataset, {"use": "image_folder", **params},
                          torch.device("cpu"), extractor_factory=lambda *a: extractor,
                          cache_dir=tmp_path / "cache")
    (result,) = evaluator.run(Noise())
    assert result.protocol["n_real"] == 6 and extractor.images_seen == 8 + 6
