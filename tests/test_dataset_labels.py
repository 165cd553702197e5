"""Class labels through the data path: every dataset's class count from its params alone,
``(image, label)`` items, skipped images taking their labels with them, prepared sets
storing labels, and batches whose labels line up with their images."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets.decoding import to_uint8
from ganforge.datasets.inspection import scan_dataset
from ganforge.datasets.policy import Skipped, collate_images, image_of, split_item
from ganforge.datasets.prepared import prepare_dataset, uint8_item
from ganforge.datasets.synthetic import class_colours
from ganforge.errors import DataError, RecipeError
from ganforge.seeds import derive_seed
from tests.lsun_data import make_lsun


def make(plugins, name: str, **params):
    return plugins.registry.create("dataset", name, params)


def spec_of(plugins, name: str, **params):
    """The spec from the params alone: nothing is built, no data is read."""
    cls = plugins.registry.get("dataset", name)
    return cls.image_spec_for(plugins.registry.structure("dataset", name, params))


def pairs(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def assert_labelled(items: list, classes: int) -> list[int]:
    """Every item is (float image, Python int label in range); returns the labels."""
    labels = []
    for item in items:
        assert isinstance(item, tuple) and len(item) == 2
        image, label = item
        assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
        assert type(label) is int and 0 <= label < classes
        labels.append(label)
    return labels


# -- the class count comes from the params alone ------------------------------------------

MISSING = "/nonexistent/ganforge-labels"


@pytest.mark.parametrize(("name", "params", "classes"), [
    ("digits", {}, 10),
    ("mnist", {"root": MISSING}, 10),
    ("cifar10", {"root": MISSING}, 10),
    ("svhn", {"root": MISSING}, 10),
    ("celeba", {"root": MISSING}, 0),
    ("synthetic", {}, 0),
    ("synthetic", {"classes": 7}, 7),
    ("image_folder", {"root": MISSING}, 0),
    ("image_folder", {"root": MISSING, "classes": ["a", "b", "c"]}, 3),
    ("lsun", {"root": MISSING, "categories": ["a", "b"]}, 0),
    ("lsun", {"root": MISSING, "categories": ["a", "b"], "labels": True}, 2),
    ("lsun", {"root": MISSING, "labels": True}, 1),
    ("prepared", {"root": MISSING}, 0),
    ("prepared", {"root": MISSING, "classes": 5}, 5),
])
def test_spec_classes_come_from_the_params_alone(plugins, name, params, classes) -> None:
    spec = spec_of(plugins, name, image_size=16, **params)
    assert spec.classes == classes and spec.size == 16


@pytest.mark.parametrize(("name", "params", "message"), [
    ("synthetic", {"classes": 1001}, "must be <= 1000"),
    ("synthetic", {"classes": -1}, "must be >= 0"),
    ("prepared", {"root": "x", "classes": -2}, "must be >= 0"),
    ("image_folder", {"root": "x", "classes": ["a", "../b"]}, "not the name of a sub-folder"),
    ("image_folder", {"root": "x", "classes": ["a", "a"]}, "listed twice"),
    ("image_folder", {"root": "x", "classes": [""]}, "not the name of a sub-folder"),
])
def test_bad_class_params_are_refused(plugins, name, params, message) -> None:
    with pytest.raises(RecipeError, match=message):
        make(plugins, name, **params)


@pytest.mark.parametrize(("name", "field", "default", "doc"), [
    ("synthetic", "classes", 0, "label image i with class i % classes"),
    ("image_folder", "classes", (), "sub-folders of root, one class each"),
    ("lsun", "labels", False, "label each image with its category's position in categories"),
    ("prepared", "classes", 0, "must equal the prepared set's classes"),
])
def test_new_params_are_documented(plugins, name, field, default, doc) -> None:
    import attrs

    from ganforge.params import param_doc

    attribute = attrs.fields_dict(plugins.registry.get("dataset", name).Params)[field]
    assert attribute.default == default and param_doc(attribute).startswith(doc)
    result = CliRunner().invoke(app, ["components", "show", "dataset", name],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert doc in result.output


# -- digits -------------------------------------------------------------------------------

def test_digits_are_labelled_with_sklearns_targets(plugins) -> None:
    from sklearn.datasets import load_digits

    dataset = make(plugins, "digits", image_size=8)
    assert dataset.classes == 10 and dataset.image_spec.classes == 10
    items = pairs(dataset)
    assert assert_labelled(items, 10) == load_digits().target.tolist()
    assert dataset.targets.tolist() == load_digits().target.tolist()
    assert all(torch.equal(image, dataset.images[i]) for i, (image, _) in enumerate(items))


# -- torchvision's sets, from tiny files in their formats ----------------------------------

def _idx(path: Path, array: np.ndarray) -> None:
    """An MNIST idx file (big-endian header, uint8 data)."""
    magic = 0x0800 | array.ndim
    path.write_bytes(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


def grey_levels(n: int) -> np.ndarray:
    return (np.arange(n) * 23 + 5).astype(np.uint8)


def test_mnist_items_carry_the_files_labels(plugins, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    labels = np.array([7, 2, 1, 0, 4, 1, 9, 5, 3, 6, 8])
    levels = grey_levels(len(labels))
    images = np.broadcast_to(levels[:, None, None], (len(labels), 28, 28))
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    dataset = make(plugins, "mnist", root=str(tmp_path), image_size=28)
    assert dataset.image_spec.classes == 10 and len(dataset) == len(labels)
    items = pairs(dataset)
    assert assert_labelled(items, 10) == labels.tolist()
    assert dataset.targets.tolist() == labels.tolist()
    for (image, _), level in zip(items, levels, strict=True):
        assert image.shape == (1, 28, 28)
        assert torch.equal(to_uint8(image), torch.full((1, 28, 28), int(level), dtype=torch.uint8))


def test_cifar10_items_carry_the_files_labels(plugins, tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    # The real files' MD5 sums cannot match tiny stand-ins: check that they exist instead.
    monkeypatch.setattr(tv_cifar, "check_integrity",
                        lambda path, md5=None: os.path.isfile(path))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    labels = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9]
    levels = grey_levels(len(labels))
    data = np.repeat(levels[:, None], 3072, axis=1)
    batch = {"data": data, "labels": labels}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch"):
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))
    dataset = make(plugins, "cifar10", root=str(tmp_path), split="test")
    assert dataset.image_spec.classes == 10 and len(dataset) == len(labels)
    items = pairs(dataset)
    assert assert_labelled(items, 10) == labels
    for (image, _), level in zip(items, levels, strict=True):
        assert torch.equal(to_uint8(image), torch.full((3, 32, 32), int(level), dtype=torch.uint8))


def test_svhn_labels_are_0_to_9(plugins, tmp_path: Path, monkeypatch) -> None:
    import scipy.io
    import torchvision.datasets.svhn as tv_svhn

    monkeypatch.setattr(tv_svhn, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    stored = np.array([10, 1, 2, 10, 9, 5])  # the .mat files label the digit 0 as 10
    levels = grey_levels(len(stored))
    x = np.broadcast_to(levels[None, None, None, :], (32, 32, 3, len(stored))).copy()
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": stored[:, None]})
    dataset = make(plugins, "svhn", root=str(tmp_path), split="test")
    assert dataset.image_spec.classes == 10
    assert assert_labelled(pairs(dataset), 10) == [0, 1, 2, 0, 9, 5]


def test_celeba_items_are_unlabelled_and_targets_stay(plugins, tmp_path: Path,
                                                      monkeypatch) -> None:
    import torchvision.datasets.celeba as tv_celeba

    monkeypatch.setattr(tv_celeba, "check_integrity",
                        lambda path, md5=None: os.path.isfile(path))
    base = tmp_path / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 5)]
    for i, name in enumerate(names):
        Image.new("RGB", (20, 24), (40 * i, 0, 0)).save(base / "img_align_celeba" / name)
    identities = [17, 3, 17, 42]
    (base / "list_eval_partition.txt").write_text("".join(f"{n} 0\n" for n in names))
    (base / "identity_CelebA.txt").write_text(
        "".join(f"{n} {k}\n" for n, k in zip(names, identities, strict=True)))
    (base / "list_attr_celeba.txt").write_text(
        "4\nSmiling Young\n" + "".join(f"{n} 1 -1\n" for n in names))
    (base / "list_bbox_celeba.txt").write_text(
        "4\nimage_id x_1 y_1 width height\n" + "".join(f"{n} 0 0 20 24\n" for n in names))
    (base / "list_landmarks_align_celeba.txt").write_text(
        "4\nlefteye_x lefteye_y\n" + "".join(f"{n} 5 6\n" for n in names))
    dataset = make(plugins, "celeba", root=str(tmp_path), image_size=16)
    assert dataset.classes == 0 and len(dataset) == 4
    assert all(isinstance(item, torch.Tensor) and item.shape == (3, 16, 16)
               for item in pairs(dataset))
    assert dataset.targets.tolist() == identities


# -- synthetic ----------------------------------------------------------------------------

def unlabelled_synthetic(index: int, image_size: int, channels: int, seed: int) -> torch.Tensor:
    """The ``synthetic`` procedure as it was before labels (a re-implementation)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "synthetic", index))
    s = image_size
    ys, xs = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
    start, end = torch.rand(2, channels, 1, 1, generator=g) * 2 - 1
    direction = torch.rand(1, generator=g).item()
    ramp = direction * xs + (1 - direction) * ys
    image = start + (end - start) * ramp
    cx, cy, r = torch.rand(3, generator=g) * torch.tensor([0.6, 0.6, 0.2]) + 0.2
    disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < (r * 0.8) ** 2
    image = torch.where(disc, torch.rand(channels, 1, 1, generator=g) * 2 - 1, image)
    qx, qy = torch.rand(2, generator=g) * 0.6 + 0.1
    square = (xs >= qx) & (xs < qx + 0.25) & (ys >= qy) & (ys < qy + 0.25)
    image = torch.where(square, torch.rand(channels, 1, 1, generator=g) * 2 - 1, image)
    return image.clamp_(-1.0, 1.0)


@pytest.mark.parametrize(("size", "channels", "seed"), [(16, 3, 0), (32, 1, 7), (8, 4, 3)])
def test_unlabelled_synthetic_images_are_unchanged(plugins, size, channels, seed) -> None:
    for params in ({}, {"classes": 0}):
        dataset = make(plugins, "synthetic", count=30, image_size=size, channels=channels,
                       seed=seed, **params)
        assert dataset.classes == 0 and dataset.targets is None
        for i in (0, 1, 5, 17, 29):
            item = dataset[i]
            assert isinstance(item, torch.Tensor)
            assert torch.equal(item, unlabelled_synthetic(i, size, channels, seed))


def pixels_of_colour(image: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Mask (H, W) of the pixels whose every channel equals ``colour``."""
    return torch.isclose(image, colour.view(-1, 1, 1), atol=1e-6, rtol=0).all(0)


@pytest.mark.parametrize(("channels", "classes"), [(3, 10), (1, 4), (3, 1000)])
def test_synthetic_classes_are_visible(plugins, channels, classes) -> None:
    count = 40
    plain = make(plugins, "synthetic", count=count, image_size=16, channels=channels)
    labelled = make(plugins, "synthetic", count=count, image_size=16, channels=channels,
                    classes=classes)
    assert labelled.image_spec.classes == classes
    items = pairs(labelled)
    labels = assert_labelled(items, classes)
    assert labels == [i % classes for i in range(count)]
    assert labelled.targets.tolist() == labels
    colours = class_colours(classes, channels)
    assert colours.shape == (classes, channels)
    for i, (image, label) in enumerate(items):
        own = pixels_of_colour(image, colours[label])
        # Only the disc changed, to the class's colour; the disc is never hidden.
        changed = (image != plain[i]).any(0)
        assert bool((own | ~changed).all()) and int(own.sum()) >= 5
        # The label can be read back from the image: its colour covers the most pixels.
        if classes <= 10:
            counts = [int(pixels_of_colour(image, c).sum()) for c in colours]
            assert max(range(classes), key=counts.__getitem__) == label


def test_synthetic_class_colours_are_apart() -> None:
    for channels, classes in ((3, 10), (1, 10), (3, 100)):
        colours = class_colours(classes, channels)
        distances = torch.cdist(colours, colours) + torch.eye(classes) * 9
        assert float(distances.min()) > 0.05
        assert float(colours.abs().max()) <= 0.9


# -- image_folder -------------------------------------------------------------------------

RED, BLUE = (255, 0, 0), (0, 0, 255)


def image_tree(root: Path) -> None:
    """cats/: 2 red, dogs/: 3 blue (one nested), empty/: no image, plus a loose image."""
    for name, colour, paths in (("cats", RED, ["a.png", "b.png"]),
                                ("dogs", BLUE, ["a.png", "b.jpg", "deep/c.png"])):
        for rel in paths:
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 10), colour).save(path)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no image here")
    Image.new("RGB", (10, 10), (0, 255, 0)).save(root / "loose.png")


def test_image_folder_labels_by_listed_sub_folder(plugins, tmp_path: Path) -> None:
    image_tree(tmp_path)
    dataset = make(plugins, "image_folder", root=str(tmp_path), image_size=8,
                   classes=["dogs", "cats"])
    assert dataset.image_spec.classes == 2 and len(dataset) == 5
    items = pairs(dataset)
    assert assert_labelled(items, 2) == [0, 0, 0, 1, 1]
    assert dataset.targets.tolist() == [0, 0, 0, 1, 1]
    for image, label in items:
        blue_or_red = image[2] if label == 0 else image[0]
        assert float(blue_or_red.min()) > 0.9  # dogs are blue, cats are red
    assert [p.parent.name for p in dataset.files] == ["dogs", "dogs", "deep", "cats", "cats"]
    plain = make(plugins, "image_folder", root=str(tmp_path), image_size=8)
    assert plain.classes == 0 and len(plain) == 6 and plain.targets is None
    assert all(isinstance(item, torch.Tensor) for item in pairs(plain))
    assert plain.class_folders() == ["cats", "dogs"]


@pytest.mark.parametrize(("classes", "message"), [
    (["cats", "birds"], r"class 1 \('birds'\): '.*birds' is not a folder"),
    (["empty", "cats"], r"class 0 \('empty'\): no images .* under '.*empty'"),
])
def test_image_folder_missing_or_empty_class_folder(plugins, tmp_path: Path, classes,
                                                    message) -> None:
    image_tree(tmp_path)
    (tmp_path / "birds.png").write_bytes(b"")  # a file, not a folder
    with pytest.raises(DataError, match=message) as info:
        make(plugins, "image_folder", root=str(tmp_path), classes=classes)
    assert "\n" not in str(info.value)


def test_skipped_image_takes_its_label_with_it(plugins, tmp_path: Path) -> None:
    image_tree(tmp_path)
    (tmp_path / "cats" / "c-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    dataset = make(plugins, "image_folder", root=str(tmp_path), image_size=8,
                   classes=["dogs", "cats"], on_error="skip")
    items = pairs(dataset)
    assert [type(item).__name__ for item in items] == ["tuple"] * 5 + ["Skipped"]
    assert "c-broken.png" in items[5].key
    assert split_item(items[5]) == (items[5], None) and image_of(items[5]) is items[5]
    batch = collate_images(items[3:])  # cats: two good images, one skipped
    assert batch.images.shape == (2, 3, 8, 8) and batch.labels.tolist() == [1, 1]
    assert len(batch.skipped) == 1 and batch.labels.dtype == torch.int64
    failing = make(plugins, "image_folder", root=str(tmp_path), classes=["cats"])
    with pytest.raises(DataError, match="c-broken.png"):
        failing[2]


# -- lsun ---------------------------------------------------------------------------------

def test_lsun_labels_are_category_positions(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, "bedroom_train", webp=3, jpeg=0, bad=False, seed=1)
    make_lsun(tmp_path, "church_outdoor_train", webp=2, jpeg=2, bad=False, seed=2)
    categories = ["church_outdoor_train", "bedroom_train"]
    dataset = make(plugins, "lsun", root=str(tmp_path), image_size=16, categories=categories,
                   labels=True)
    assert dataset.image_spec.classes == 2
    labels = assert_labelled(pairs(dataset), 2)
    assert labels == [0, 0, 0, 0, 1, 1, 1] == [dataset.locate(i)[0] for i in range(7)]
    assert dataset.targets.tolist() == labels
    plain = make(plugins, "lsun", root=str(tmp_path), image_size=16, categories=categories)
    assert plain.classes == 0 and plain.targets is None
    for i, (image, _) in enumerate(pairs(dataset)):
        assert torch.equal(plain[i], image)
    limited = make(plugins, "lsun", root=str(tmp_path), image_size=16,
                   categories=categories, labels=True, limit=5)
    assert limited.targets.tolist() == [0, 0, 0, 0, 1] and limited.classes == 2
    with pytest.raises(IndexError):
        limited[5]


def test_lsun_skip_policy_with_labels_in_a_loader(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path, "bedroom_train", webp=2, jpeg=2, bad=True, seed=1)
    make_lsun(tmp_path, "kitchen_train", webp=3, jpeg=0, bad=False, seed=3)
    dataset = make(plugins, "lsun", root=str(tmp_path), image_size=16, on_error="skip",
                   categories=["bedroom_train", "kitchen_train"], labels=True)
    items = pairs(dataset)
    kept = [item for item in items if not isinstance(item, Skipped)]
    assert len(items) == 10 and len(kept) == 7
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_images)
    batches = list(loader)
    assert sum(len(b.skipped) for b in batches) == 3
    assert torch.equal(torch.cat([b.images for b in batches]),
                       torch.stack([image for image, _ in kept]))
    assert torch.cat([b.labels for b in batches]).tolist() == [label for _, label in kept]
    assert [label for _, label in kept] == [0, 0, 0, 0, 1, 1, 1]


# -- the loader ---------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_carry_aligned_labels(plugins, workers: int) -> None:
    dataset = make(plugins, "digits", image_size=8)
    loader = DataLoader(dataset, batch_size=50, shuffle=True, num_workers=workers,
                        collate_fn=collate_images, generator=torch.Generator().manual_seed(0))
    seen = 0
    for batch in loader:
        assert batch.labels is not None and batch.labels.dtype == torch.int64
        assert batch.labels.shape == (batch.images.shape[0],)
        # Each image is the digits image of that label: find it among the whole set.
        for image, label in zip(batch.images, batch.labels.tolist(), strict=True):
            matches = (dataset.images == image).flatten(1).all(1).nonzero().flatten()
            assert label in dataset.targets[matches].tolist()
        seen += batch.images.shape[0]
    assert seen == len(dataset)
    unlabelled = collate_images([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    assert unlabelled.labels is None


# -- prepared -----------------------------------------------------------------------------

def prepare(plugins, source: dict, out: Path, shard_size: int = 5, workers: int = 0):
    dataset = make(plugins, source["use"], **{k: v for k, v in source.items() if k != "use"})
    return dataset, prepare_dataset(dataset, source, out, shard_size=shard_size,
                                    workers=workers, progress=False)


def test_prepared_round_trip_with_labels(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 23, "image_size": 16, "channels": 3, "classes": 4}
    dataset, report = prepare(plugins, source, tmp_path / "prep", workers=2)
    assert report.count == 23 and report.shards_written == 5
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["image_spec"] == {"channels": 3, "size": 16, "classes": 4}
    assert [s["labels"] for s in manifest["shards"]] == [
        f"shard-{n:05d}.labels.safetensors" for n in range(5)]
    stored = load_file(tmp_path / "prep" / "shard-00001.labels.safetensors")
    assert stored["labels"].dtype == torch.int64 and stored["labels"].tolist() == [1, 2, 3, 0, 1]
    expected = [i % 4 for i in range(23)]
    for in_memory in ("none", "host", "device"):
        prepared = make(plugins, "prepared", root=str(tmp_path / "prep"), image_size=16,
                        classes=4, in_memory=in_memory)
        assert prepared.image_spec.classes == 4
        items = pairs(prepared)
        assert assert_labelled(items, 4) == expected == prepared.targets.tolist()
        for i, (image, _) in enumerate(items):
            assert torch.equal(to_uint8(image), uint8_item(dataset, i))
        resident = prepared.resident_labels()
        if in_memory == "none":
            assert resident is None and prepared.resident_images() is None
        else:
            assert resident.dtype == torch.int64 and resident.tolist() == expected
            assert resident.shape[0] == prepared.resident_images().shape[0]


def test_prepared_class_count_is_checked_against_the_folder(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 8, "image_size": 16, "classes": 3}
    prepare(plugins, source, tmp_path / "labelled")
    root = str(tmp_path / "labelled")
    for asked in (0, 5):
        with pytest.raises(DataError, match=r"holds images labelled with 3 classes but the "
                           rf"recipe asks for {asked} classes; set dataset.classes = 3"):
            make(plugins, "prepared", root=root, image_size=16, classes=asked)
    plain = {"use": "synthetic", "count": 8, "image_size": 16}
    prepare(plugins, plain, tmp_path / "plain")
    with pytest.raises(DataError, match="holds unlabelled images but the recipe asks for 2"):
        make(plugins, "prepared", root=str(tmp_path / "plain"), image_size=16, classes=2)


def test_unlabelled_prepared_folders_are_as_before(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 12, "image_size": 16}
    prepare(plugins, source, tmp_path / "prep")
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["image_spec"] == {"channels": 3, "size": 16}
    assert all("labels" not in s for s in manifest["shards"])
    assert not list((tmp_path / "prep").glob("*.safetensors"))
    for in_memory in ("none", "device"):
        prepared = make(plugins, "prepared", root=str(tmp_path / "prep"), image_size=16,
                        in_memory=in_memory)
        assert prepared.classes == 0 and prepared.targets is None
        assert prepared.resident_labels() is None
        assert all(isinstance(item, torch.Tensor) for item in pairs(prepared))


def test_prepared_labels_survive_skipped_images(plugins, tmp_path: Path) -> None:
    make_lsun(tmp_path / "lsun", "bedroom_train", webp=3, jpeg=3, bad=True, seed=1)
    make_lsun(tmp_path / "lsun", "tower_train", webp=4, jpeg=0, bad=True, seed=2)
    source = {"use": "lsun", "root": str(tmp_path / "lsun"), "image_size": 16,
              "on_error": "skip", "categories": ["bedroom_train", "tower_train"],
              "labels": True}
    dataset, report = prepare(plugins, source, tmp_path / "prep", shard_size=4)
    assert (report.count, report.skipped) == (10, 6)
    kept = [item for item in pairs(dataset) if not isinstance(item, Skipped)]
    prepared = make(plugins, "prepared", root=str(tmp_path / "prep"), image_size=16,
                    classes=2)
    items = pairs(prepared)
    assert assert_labelled(items, 2) == [label for _, label in kept] == [0] * 6 + [1] * 4
    for (image, _), (want, _) in zip(items, kept, strict=True):
        assert torch.equal(image, want)


def test_damaged_labels_file_is_one_line(plugins, tmp_path: Path) -> None:
    source = {"use": "synthetic", "count": 8, "image_size": 16, "classes": 2}
    prepare(plugins, source, tmp_path / "prep")
    labels = tmp_path / "prep" / "shard-00001.labels.safetensors"
    labels.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"shard-00001\.labels\.safetensors is damaged") \
            as info:
        make(plugins, "prepared", root=str(tmp_path / "prep"), image_size=16, classes=2)
    assert "\n" not in str(info.value)
    labels.unlink()
    with pytest.raises(DataError, match=r"cannot read .*shard-00001\.labels\.safetensors"):
        make(plugins, "prepared", root=str(tmp_path / "prep"), image_size=16, classes=2)


def test_device_resident_batches_carry_labels(plugins, tmp_path: Path) -> None:
    from ganforge.training.data import real_batches

    source = {"use": "synthetic", "count": 20, "image_size": 16, "classes": 3}
    prepare(plugins, source, tmp_path / "prep")
    prepared = make(plugins, "prepared", root=str(tmp_path / "prep"), image_size=16,
                    classes=3, in_memory="device")
    batches = real_batches(prepared, 6, 0, 0, num_workers=0, device=torch.device("cpu"),
                           pin_memory=False)
    for _ in range(5):
        batch = next(batches)
        assert batch.labels is not None and batch.labels.shape == (6,)
        for image, label in zip(batch.images, batch.labels.tolist(), strict=True):
            index = int((prepared.resident_images() == to_uint8(image)).flatten(1).all(1)
                        .nonzero()[0])
            assert label == index % 3


# -- the CLI ------------------------------------------------------------------------------

def test_data_cli_shows_and_records_classes(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "prepare", "synthetic", "--out", str(tmp_path / "s"),
                                 "--set", "count=12", "--set", "image_size=16",
                                 "--set", "classes=3", "-j", "0"])
    assert result.exit_code == 0, result.output
    assert "prepared 12 images (3x16x16, 3 classes)" in result.output
    assert (f'[dataset] use = "prepared", root = "{tmp_path / "s"}", image_size = 16, '
            "channels = 3, classes = 3") in " ".join(result.output.split())
    result = runner.invoke(app, ["data", "inspect", "prepared", "--set",
                                 f"root={tmp_path / 's'}", "--set", "image_size=16",
                                 "--set", "classes=3", "--n", "4",
                                 "--out", str(tmp_path / "real.png")])
    assert result.exit_code == 0, result.output
    assert "dataset 'prepared': 12 images, 3x16x16, 3 classes" in result.output
    assert "images per class among the decoded: 4 to 4" in result.output


def test_inspect_lists_sub_folders_to_label_by(plugins, tmp_path: Path) -> None:
    image_tree(tmp_path / "images")
    result = CliRunner().invoke(app, ["data", "inspect", "image_folder", "--set",
                                      f"root={tmp_path / 'images'}", "--set", "image_size=8",
                                      "--n", "2", "--out", str(tmp_path / "real.png")])
    assert result.exit_code == 0, result.output
    assert "6 images, 3x8x8, unlabelled" in result.output
    assert 'classes = ["cats", "dogs"]' in " ".join(result.output.split())
    dataset = make(plugins, "image_folder", root=str(tmp_path / "images"),
                   classes=["cats", "dogs"], image_size=8)
    report = scan_dataset(dataset, workers=0, progress=False)
    assert report.class_counts == [2, 3] and report.bad == []
