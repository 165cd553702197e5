"""Data on the device by default when it fits (``residency = "auto"``): digits, stacked
digits, CIFAR-10 and MNIST at their own size, and prepared sets are indexed on the training
device with no loader; what they hold is exactly what their items are, and a run trains the
same with and without the loader."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.datasets.decoding import to_unit_range
from ganforge.training import data as training_data
from ganforge.training.data import holds_on_device, real_batches, resident_bytes
from tests.conftest import QUICKSTART
from tests.test_dataset_labels import _idx


def items_of(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.tensor(labels)


def as_unit(images: torch.Tensor) -> torch.Tensor:
    return to_unit_range(images) if images.dtype == torch.uint8 else images


@pytest.fixture
def cifar(plugins, tmp_path: Path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batch = {"data": rng.integers(0, 256, (12, 3072), dtype=np.uint8),
             "labels": rng.integers(0, 10, 12).tolist()}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch"):
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))
    return lambda **params: plugins.registry.create(
        "dataset", "cifar10", {"root": str(tmp_path), "split": "test", **params})


def test_in_memory_sets_hold_exactly_their_items(plugins, cifar, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (9, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, 9))
    create = plugins.registry.create
    for dataset in (create("dataset", "digits", {}),
                    create("dataset", "stacked_digits", {"size": 50, "seed": 2}),
                    cifar(), create("dataset", "mnist", {"root": str(tmp_path),
                                                         "image_size": 28})):
        assert dataset.residency == "auto"
        images, labels = items_of(dataset)
        resident = dataset.resident_images()
        assert resident.shape == images.shape and resident.dtype in (torch.uint8, torch.float32)
        assert torch.equal(as_unit(resident), images), type(dataset).__name__
        assert torch.equal(dataset.resident_labels(), labels)
    # Another size or channels than the stored ones: read and resized item by item.
    assert cifar(image_size=64).resident_images() is None
    assert cifar(channels=1).resident_images() is None


def test_auto_holds_a_set_only_when_it_fits(plugins, monkeypatch) -> None:
    digits = plugins.registry.create("dataset", "digits", {})
    assert resident_bytes(digits) == 1797 * 32 * 32 * 4
    cpu = torch.device("cpu")
    monkeypatch.setattr(training_data, "available_memory", lambda device: 4 * 1797 * 4096)
    assert holds_on_device(digits, cpu)
    monkeypatch.setattr(training_data, "available_memory", lambda device: 4 * 1797 * 4096 - 4)
    assert not holds_on_device(digits, cpu)
    synthetic = plugins.registry.create("dataset", "synthetic", {"count": 8})
    assert synthetic.residency == "none" and not holds_on_device(synthetic, cpu)


def test_resident_and_loader_batches_are_the_same(plugins, monkeypatch) -> None:
    digits = plugins.registry.create("dataset", "digits", {})
    cpu = torch.device("cpu")

    def first_batches(resident: bool) -> list:
        monkeypatch.setattr(training_data, "available_memory",
                            lambda device: 2**40 if resident else 0)
        batches = real_batches(digits, 64, seed=3, start_batch=5, num_workers=0, device=cpu,
                               pin_memory=False)
        assert isinstance(batches, training_data.WorkerErrorsUnwrapped) != resident
        return [next(batches) for _ in range(30)]  # past the end of the first epoch

    for on_device, loaded in zip(first_batches(True), first_batches(False), strict=True):
        assert torch.equal(on_device.images, loaded.images)
        assert torch.equal(on_device.labels, loaded.labels)


def test_a_run_trains_the_same_with_and_without_the_loader(plugins, tmp_path: Path,
                                                           monkeypatch) -> None:
    import ganforge

    overrides = ["run.steps=6", "run.log_every=1", "generator.width=8",
                 "discriminator.width=8", "run.checkpoint_every=6", "run.sample_every=6"]
    curves = []
    for memory in (2**40, 0):
        monkeypatch.setattr(training_data, "available_memory", lambda device, m=memory: m)
        out = tmp_path / f"run-{memory}"
        ganforge.train(QUICKSTART, plugins, out, overrides=overrides)
        curves.append([(r["loss_d"], r["loss_g"]) for r in map(
            json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss_d" in r])
    assert len(curves[0]) == 6 and curves[0] == curves[1]


def test_a_prepared_set_is_read_whole_only_when_held(plugins, tmp_path: Path,
                                                     monkeypatch) -> None:
    from ganforge.datasets.prepared import prepare_dataset

    source = {"use": "synthetic", "count": 10, "image_size": 8}
    prepare_dataset(plugins.registry.create("dataset", "synthetic", {"count": 10,
                                                                     "image_size": 8}),
                    source, tmp_path / "prep", workers=0)
    prepared = plugins.registry.create("dataset", "prepared", {
        "root": str(tmp_path / "prep"), "image_size": 8})
    assert prepared.params.in_memory == "auto" and prepared._resident is None
    monkeypatch.setattr(training_data, "available_memory", lambda device: 0)
    batches = real_batches(prepared, 4, seed=0, start_batch=0, num_workers=0,
                           device=torch.device("cpu"), pin_memory=False)
    next(batches)
    assert prepared._resident is None  # memory-mapped, read item by item
    monkeypatch.setattr(training_data, "available_memory", lambda device: 2**40)
    held = real_batches(prepared, 4, seed=0, start_batch=0, num_workers=0,
                        device=torch.device("cpu"), pin_memory=False)
    images = torch.stack([prepared[i] for i in range(10)])
    assert torch.equal(to_unit_range(prepared._resident), images)
    assert next(held).images.shape == (4, 3, 8, 8)
