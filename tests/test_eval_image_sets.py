"""``ganforge eval --fake-images`` and ``ganforge.evaluate(fake_images=...)``: a folder of
PNGs or an ``.npz`` of samples (as another toolkit saves them) scored against the digits
with the protocol records of a checkpoint evaluation; real digits score near their
real-vs-real value, noise far worse; every bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app

from .conftest import QUICKSTART, one_error_line

#: Real digits scored; the dataset's real images a metric draws; pixel features (offline).
N_IMAGES, N_REAL = 240, 600
PIXELS = ["--extractor", "pixels", "--n-real", str(N_REAL), "--device", "cpu"]


def invoke(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def json_objects(text: str) -> list[dict[str, Any]]:
    objects, decoder, text = [], json.JSONDecoder(), text.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        objects.append(obj)
        text = text[end:].strip()
    return objects


def write_folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real digits (the dataset's own images at 32x32, as uint8) as a folder of PNGs and as
    an .npz (NHWC), other real digits as an .npz (NCHW), and noise as a folder and .npz."""
    from ganforge import load_plugins

    root = tmp_path_factory.mktemp("image_sets")
    digits = load_plugins().registry.create("dataset", "digits", {"image_size": 32})
    pixels = np.stack([np.rint((digits[i][0].numpy() + 1) * 127.5).astype(np.uint8)
                       for i in range(2 * N_IMAGES)]).transpose(0, 2, 3, 1)  # NHWC
    noise = np.random.default_rng(0).integers(0, 256, pixels[:N_IMAGES].shape, dtype=np.uint8)
    np.savez(root / "real.npz", arr_0=pixels[:N_IMAGES])
    np.savez(root / "other_real.npz", images=pixels[N_IMAGES:].transpose(0, 3, 1, 2))
    np.savez(root / "noise.npz", images=noise)
    return {"folder": write_folder(root / "real", pixels[:N_IMAGES]),
            "npz": root / "real.npz", "other": root / "other_real.npz",
            "noise": write_folder(root / "noise", noise), "noise_npz": root / "noise.npz"}


def test_cli_scores_folders_and_npz_with_the_protocol_of_a_checkpoint(sets: dict[str, Path]
                                                                      ) -> None:
    scores = {}
    for name in ("folder", "npz", "other", "noise", "noise_npz"):
        kid = ["-m", "kid"] if name == "folder" else []
        result = invoke("eval", "--fake-images", sets[name], "--dataset", "digits",
                        "-m", "fid", *kid, *PIXELS, "--json")
        assert result.exit_code == 0, result.output
        fid, *others = json_objects(result.stdout)
        scores[name] = fid["value"]
        p = fid["protocol"]
        assert (p["n_fake"], p["n_real"], p["extractor"]) == (N_IMAGES, N_REAL, "pixels-8x8")
        assert p["step"] is None and p["generator"] == "images"
        assert p["dataset"] == {"use": "ganforge:digits", "image_size": 32, "channels": 1,
                                    "in_memory": "auto"}
        assert p["fake_images"]["path"] == str(sets[name].resolve())
        assert p["fake_images"]["images"] == N_IMAGES and len(p["fake_images"]["sha256"]) == 64
        assert p["reference"]["key"]
        assert [o["metric"] for o in others] == (["kid"] if kid else [])
        assert "recorded the scores" not in result.output
    # the same pixels read from PNG files and from an array score the same
    assert scores["folder"] == pytest.approx(scores["npz"], abs=1e-9)
    assert scores["noise"] == pytest.approx(scores["noise_npz"], abs=1e-9)
    # real digits: near the real-vs-real value of other real digits; noise: far worse
    assert 0 < scores["npz"] < 3 and 0 < scores["other"] < 3
    assert abs(scores["npz"] - scores["other"]) < 1.5
    assert scores["noise"] > 10 * max(scores["npz"], scores["other"])


def test_cli_prints_a_table_and_takes_the_dataset_from_a_recipe_or_set(
        sets: dict[str, Path]) -> None:
    result = invoke("eval", "--fake-images", sets["folder"], "--dataset", QUICKSTART, *PIXELS,
                    "--n", "100")
    assert result.exit_code == 0, result.output
    assert "│ fid " in result.output and "│ 100 " in result.output
    assert f"the first 100 of the {N_IMAGES} images of {sets['folder']}" in result.output
    assert '"use": "ganforge:digits"' in result.output
    by_set = invoke("eval", "--fake-images", sets["npz"], "--set", "dataset.use=digits",
                    *PIXELS, "--n", "100", "--json")
    assert by_set.exit_code == 0, by_set.output
    assert json_objects(by_set.stdout)[0]["protocol"]["n_fake"] == 100


def test_api_scores_images_with_seeds_and_reference_statistics(sets: dict[str, Path],
                                                                tmp_path: Path) -> None:
    result = ganforge.evaluate(fake_images=sets["npz"], metrics=["fid"], extractor="pixels",
                               n_real=N_REAL, dataset="digits", device="cpu",
                               save_reference_stats=tmp_path / "digits.npz")
    assert result.checkpoint is None and result.step is None and result.generator == "images"
    assert result.fake_images == sets["npz"] and not result.conditional
    assert result.recorded is None and result.record_problem is None
    assert 0 < result.scores["fid"] < 3
    assert result.reference_images == N_REAL
    with np.load(tmp_path / "digits.npz") as stats:
        assert stats["mu"].shape == (64,) and stats["sigma"].shape == (64, 64)
    noise = ganforge.evaluate(fake_images=sets["noise"], metrics=["fid"], extractor="pixels",
                              n_real=N_REAL, dataset="digits", device="cpu")
    assert noise.scores["fid"] > 10 * result.scores["fid"]
    seeded = ganforge.evaluate(fake_images=sets["npz"], metrics=["fid"], extractor="pixels",
                               n_real=N_REAL, n=100, dataset="digits", device="cpu",
                               seeds=[0, 1])
    assert seeded.seeds == (0, 1) and seeded.std["fid"] > 0  # other real images per seed
    runs = seeded.per_seed[0]["per_seed"]
    assert [r["protocol"]["n_fake"] for r in runs] == [100, 100]
    assert runs[0]["protocol"]["fake_images"] == runs[1]["protocol"]["fake_images"]


def test_metrics_without_real_images_need_no_dataset(sets: dict[str, Path],
                                                     tmp_path: Path) -> None:
    stats = tmp_path / "stats.npz"
    ganforge.evaluate(fake_images=sets["other"], metrics=["fid"], extractor="pixels",
                      n_real=N_REAL, dataset="digits", device="cpu",
                      save_reference_stats=stats)
    result = ganforge.evaluate(fake_images=sets["npz"], metrics=["fid"], extractor="pixels",
                               reference_stats=stats, device="cpu")
    assert result.dataset == {} and 0 < result.scores["fid"] < 3


def test_bad_image_sets_are_refused_in_one_line(sets: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    np.savez(tmp_path / "other_key.npz", samples=np.zeros((4, 32, 32, 1), np.uint8))
    small = tmp_path / "small.npz"
    np.savez(small, images=np.zeros((4, 16, 16, 1), np.uint8))
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, images=np.zeros((4, 32, 32, 3), np.uint8))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(corrupt / f"{i}.png")
    (corrupt / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cases = [
        ([empty], ["empty", "holds 0 .png/.jpg image(s)"]),
        ([tmp_path / "other_key.npz"], ["no array under arr_0 or images", "samples"]),
        ([small], ["1x16x16", "1x32x32", "size and channels"]),
        ([rgb], ["3x32x32", "1x32x32"]),
        ([sets["npz"], "--n", N_IMAGES + 1], [f"holds {N_IMAGES} images",
                                               f"--n {N_IMAGES + 1}"]),
        ([corrupt], [str(corrupt / "1.png"), "not a readable image"]),
        ([tmp_path / "missing"], ["not a folder of images or an .npz file"]),
    ]
    for args, pieces in cases:
        result = invoke("eval", "--fake-images", *args, "--dataset", "digits", *PIXELS)
        one_error_line(result, "--fake-images", *pieces)


def test_options_that_do_not_fit_saved_images_are_refused(sets: dict[str, Path]) -> None:
    images = ["--fake-images", sets["npz"]]
    cases = [
        (["eval", *images, *PIXELS], ["--dataset NAME_OR_RECIPE", "fid"]),
        (["eval", "ckpt.safetensors", *images, "-d", "digits"], ["one or the other"]),
        (["eval", *images, "-d", "digits", "--per-class"], ["--per-class", "no classes"]),
        (["eval", *images, "-d", "digits", "--no-ema"], ["--no-ema"]),
        (["eval", "--device", "cpu"], ["give a checkpoint", "--fake-images"]),
        (["eval", "ckpt.safetensors", "-d", "digits"], ["--dataset is for --fake-images"]),
        (["eval", *images, "-d", "digits", "--set", "generator.width=4"], ["dataset.KEY"]),
        (["eval", *images, "--set", "dataset.image_size=16"], ["no dataset is named"]),
        (["eval", *images, "-d", "no_such_dataset", *PIXELS], ["no_such_dataset"]),
    ]
    for args, pieces in cases:
        one_error_line(invoke(*args), *pieces)
    with pytest.raises(ganforge.UsageError, match="one or the other"):
        ganforge.evaluate("ckpt.safetensors", fake_images=sets["npz"], dataset="digits")
