"""``ganforge export``: the model folder (weights, config, card, samples), reading it back
with nothing else (``ganforge sample DIR``, ``ganforge.load_generator``), refusing tampered
folders in one line, and pushing to the Hub (offline: a recording fake, a failing one, and
the real client in offline mode)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.sharing import EXPORTED_FILES, load_exported, read_config
from ganforge.training.assembly import load_generator as load_checkpoint_generator
from ganforge.training.checkpoint_format import read_checkpoint, read_header

from .conftest import CONDITIONAL_QUICKSTART, QUICKSTART

#: The quickstart, tiny: a few steps of a narrow DCGAN on the digits (a few seconds).
TINY = ["run.steps=4", "run.batch_size=8", "generator.width=8", "discriminator.width=8",
        "generator.latent_dim=16", "run.checkpoint_every=4", "run.sample_every=4",
        "run.log_every=2", "run.device=cpu", "run.sample_count=4"]
#: An EMA of G, and an FID (pixel features: offline, fast) logged at the last step.
EMA_AND_EVAL = ["ema.enabled=true", "eval.every=4", "eval.metrics.fid.use=fid",
                "eval.metrics.fid.extractor=pixels", "eval.metrics.fid.n_fake=16",
                "eval.metrics.fid.n_real=24", "eval.metrics.fid.protocol_images=20"]
CHECKPOINT = Path("checkpoints") / "step-0000004.safetensors"


def invoke(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def train(out: Path, recipe: Path, *overrides: str) -> Path:
    sets = [x for o in [*TINY, *overrides] for x in ("--set", o)]
    result = invoke("run", recipe, "--out", out, "--quiet", *sets)
    assert result.exit_code == 0, result.output
    return out / CHECKPOINT


def export(checkpoint: Path, out: Path, *args: Any):
    return invoke("export", checkpoint, "--out", out, "--device", "cpu", *args)


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, exported folder) of a quickstart run with an EMA and a recorded FID."""
    root = tmp_path_factory.mktemp("ema")
    checkpoint = train(root / "run", QUICKSTART, *EMA_AND_EVAL)
    result = export(checkpoint, root / "exported")
    assert result.exit_code == 0, result.output
    return checkpoint, root / "exported"


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, exported folder) of a quickstart run without EMA or scores, its G with
    spectral norm (power-iteration vectors are buffers that must travel too)."""
    root = tmp_path_factory.mktemp("plain")
    checkpoint = train(root / "run", QUICKSTART, "generator.norm=spectral")
    result = export(checkpoint, root / "exported")
    assert result.exit_code == 0, result.output
    return checkpoint, root / "exported"


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("conditional")
    checkpoint = train(root / "run", CONDITIONAL_QUICKSTART, "ema.enabled=true")
    result = export(checkpoint, root / "exported")
    assert result.exit_code == 0, result.output
    return checkpoint, root / "exported"


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def copy_of(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def one_line_error(result, *names: str) -> str:
    """The single line a refused command prints (exit code 2), naming each of ``names``."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


# -- the folder --------------------------------------------------------------------------

def test_folder_holds_the_generator_and_its_ema_with_buffers(ema_run, plain_run) -> None:
    for checkpoint, folder in (ema_run, plain_run):
        assert sorted(p.name for p in folder.iterdir()) == sorted(EXPORTED_FILES)
        saved = read_checkpoint(checkpoint)
        exported = load_file(folder / "model.safetensors")
        expected = {f"generator.{k}": v for k, v in saved.section("generator").items()}
        expected.update({f"generator_ema.{k}": v
                         for k, v in saved.section("generator_ema").items()})
        assert exported.keys() == expected.keys()
        assert all(torch.equal(exported[k], expected[k]) for k in expected)
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            metadata = f.metadata()
        assert metadata["format"] == "pt" and set(metadata) == {"format", "ganforge.integrity"}
        sections = set(json.loads(metadata["ganforge.integrity"])["sha256"])
        assert sections == ({"generator", "generator_ema"} if folder == ema_run[1]
                            else {"generator"})
    ema_keys = load_file(ema_run[1] / "model.safetensors").keys()
    assert any(k.startswith("generator_ema.") and k.endswith("running_mean") for k in ema_keys)
    assert any(k.endswith("num_batches_tracked") for k in ema_keys)
    plain_keys = load_file(plain_run[1] / "model.safetensors").keys()
    assert not any(k.startswith("generator_ema.") for k in plain_keys)
    assert any("_u" in k for k in plain_keys)  # spectral norm's power-iteration vector


def test_config_json_says_what_rebuilds_the_generator(ema_run, plain_run) -> None:
    data = json.loads((ema_run[1] / "config.json").read_text())
    assert sorted(data) == ["conditional", "format", "format_version", "ganforge_version",
                            "generator", "image", "latent", "plugins", "step",
                            "trained_with", "weights"]
    header = read_header(ema_run[0])
    assert data["format"] == "ganforge-generator" and data["format_version"] == 1
    assert data["ganforge_version"] == ganforge.__version__ and data["step"] == 4
    assert data["generator"]["use"] == "dcgan:dcgan"
    assert data["generator"]["params"] == {k: v for k, v in header.recipe_table["generator"]
                                           .items() if k != "use"}
    assert data["image"] == {"channels": 1, "size": 32, "classes": 10}  # the digits
    assert data["latent"] == {"dim": 16, "prior": "uniform"}
    assert data["conditional"] is False
    assert data["weights"] == {"raw": "generator", "ema": "generator_ema"}
    dist, version = header.versions["plugin:dcgan"].split(" ")
    assert data["plugins"] == {"dcgan": {"distribution": dist, "version": version}}
    assert data["trained_with"] == {"ganforge": header.versions["ganforge"],
                                    "torch": header.versions["torch"]}
    plain = read_config(plain_run[1] / "config.json")
    assert plain.weights.ema is None and plain.generator.params["norm"] == "spectral"


# -- reading it back ---------------------------------------------------------------------

@pytest.mark.parametrize("no_ema", [False, True], ids=["ema", "no-ema"])
@pytest.mark.parametrize("which", ["ema_run", "plain_run"])
def test_sample_dir_is_pixel_identical_to_sample_checkpoint(
        which: str, no_ema: bool, request, tmp_path: Path) -> None:
    checkpoint, folder = request.getfixturevalue(which)
    flags = ["--no-ema"] if no_ema else []
    from_checkpoint = invoke("sample", checkpoint, "--n", 16, "--seed", 7, "--out",
                             tmp_path / "checkpoint.png", "--device", "cpu", *flags)
    from_folder = invoke("sample", folder, "--n", 16, "--seed", 7, "--out",
                         tmp_path / "folder.png", "--device", "cpu", *flags)
    assert from_checkpoint.exit_code == 0, from_checkpoint.output
    assert from_folder.exit_code == 0, from_folder.output
    ema_used = which == "ema_run" and not no_ema
    assert ("(EMA)" in from_folder.output) == ema_used
    assert from_folder.output.replace("folder.png", "") == \
        from_checkpoint.output.replace("checkpoint.png", "")
    assert np.array_equal(pixels(tmp_path / "folder.png"), pixels(tmp_path / "checkpoint.png"))


def test_the_ema_and_the_raw_generator_differ(ema_run, tmp_path: Path) -> None:
    """(so that the EMA / --no-ema comparisons above compare two different things)"""
    _, folder = ema_run
    for flags, name in (([], "ema.png"), (["--no-ema"], "raw.png")):
        result = invoke("sample", folder, "--n", 4, "--out", tmp_path / name, "--device",
                        "cpu", *flags)
        assert result.exit_code == 0, result.output
    assert not np.array_equal(pixels(tmp_path / "ema.png"), pixels(tmp_path / "raw.png"))


def test_sample_dir_needs_nothing_else(ema_run, tmp_path: Path) -> None:
    """A copy of the folder alone (no run directory, no checkpoint, no dataset, Hub
    offline), in a fresh process, draws the grid the card shows."""
    copy = copy_of(ema_run[1], tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GANFORGE_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "ganforge", "sample", str(copy), "--out",
                          str(tmp_path / "grid.png"), "--device", "cpu"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "from step 4 (EMA)" in out.stderr
    assert np.array_equal(pixels(tmp_path / "grid.png"), pixels(copy / "samples.png"))


@pytest.mark.parametrize("ema", [True, False])
def test_load_generator_equals_the_checkpoints(ema_run, ema: bool) -> None:
    checkpoint, folder = ema_run
    rng = torch.get_rng_state()
    loaded = ganforge.load_generator(folder, device="cpu", ema=ema)
    assert torch.equal(torch.get_rng_state(), rng)  # loading draws nothing from the caller's
    assert not loaded.training
    reference, _, _ = load_checkpoint_generator(checkpoint, ganforge.load_plugins().registry,
                                                "cpu", ema=ema)
    got, want = loaded.state_dict(), reference.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    z = loaded.sample_latent(8, torch.Generator().manual_seed(1), "cpu")
    with torch.no_grad():
        assert torch.equal(loaded(z), reference(z))
    # a checkpoint path works too
    from_checkpoint = ganforge.load_generator(checkpoint, ema=ema)
    assert all(torch.equal(from_checkpoint.state_dict()[k], want[k]) for k in want)


def test_load_exported_says_which_weights(ema_run, plain_run) -> None:
    registry = ganforge.load_plugins().registry
    assert load_exported(ema_run[1], registry).is_ema
    assert not load_exported(ema_run[1], registry, ema=False).is_ema
    plain = load_exported(plain_run[1], registry)
    assert not plain.is_ema and plain.step == 4 and plain.classes == 10


def test_a_conditional_generator_round_trips(conditional_run, tmp_path: Path) -> None:
    checkpoint, folder = conditional_run
    config = read_config(folder / "config.json")
    assert config.conditional and config.image.classes == 10
    for flags in ([], ["--class", "3"], ["--no-ema", "--class", "all"]):
        paths = []
        for source, name in ((checkpoint, "c.png"), (folder, "f.png")):
            result = invoke("sample", source, "--n", 20, "--seed", 2, "--out", tmp_path / name,
                            "--device", "cpu", *flags)
            assert result.exit_code == 0, result.output
            paths.append(tmp_path / name)
        assert np.array_equal(pixels(paths[0]), pixels(paths[1])), flags
    loaded = ganforge.load_generator(folder)
    reference, _, _ = load_checkpoint_generator(checkpoint, ganforge.load_plugins().registry)
    z = loaded.sample_latent(10, torch.Generator().manual_seed(0), "cpu")
    y = torch.arange(10)
    with torch.no_grad():
        assert torch.equal(loaded(z, y), reference(z, y))
    card = (folder / "README.md").read_text()
    assert "A class-conditional (10 classes) `dcgan:dcgan` generator" in card
    assert "images = generator(z, labels)" in card


# -- the model card ----------------------------------------------------------------------

def front_matter(card: str) -> list[str]:
    lines = card.splitlines()
    assert lines[0] == "---"
    return lines[1:lines.index("---", 1)]


def test_model_card(ema_run, tmp_path: Path) -> None:
    checkpoint, folder = ema_run
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert "library_name: ganforge" in meta
    assert '- "gan"' in meta and '- "dcgan"' in meta
    assert "pipeline_tag: unconditional-image-generation" in meta
    # the resolved recipe, exactly the checkpoint's
    recipe = card.split("```toml\n", 1)[1].split("\n```", 1)[0]
    assert tomllib.loads(recipe) == read_header(checkpoint).recipe_table
    # the training data
    assert "## Training data" in card and "| use | ganforge:digits |" in card
    assert "| image_size | 32 |" in card
    # the samples: a PNG linked from the card, the grid `ganforge sample` draws
    assert "](samples.png)" in card
    assert (folder / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = invoke("sample", checkpoint, "--n", 64, "--seed", 0, "--out",
                    tmp_path / "grid.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(folder / "samples.png"), pixels(tmp_path / "grid.png"))
    # the score the run logged at this step, with its protocol
    logged = [json.loads(x) for x in (checkpoint.parent.parent / "metrics.jsonl").read_text()
              .splitlines()]
    fid = next(x["eval/fid"] for x in logged if x["step"] == 4 and "eval/fid" in x)
    row = next(x for x in card.splitlines() if x.startswith("| fid | fid |"))
    assert f"| {fid:.4f} | 4 |" in row
    # the protocol the evaluation used, as recorded in evaluations.jsonl
    for protocol in ("metric=fid", "n_fake=16", "n_real=24", "extractor=pixels-8x8",
                     "generator=ema", "reference=real features "):
        assert protocol in row
    assert row.endswith("| evaluations.jsonl |")
    # 16 generated images, fewer than the 20 the metric claims: said under the table
    assert "**Not comparable:** fid: scored with 16 generated images, fewer than the 20" in card
    assert str(checkpoint.parent.parent) not in card  # no local path of the real images
    assert "No scores recorded" not in card


def test_model_card_without_scores(plain_run) -> None:
    card = (plain_run[1] / "README.md").read_text()
    assert "## Evaluation" in card and "No scores recorded" in card
    assert "generator_ema" not in card.split("## Versions")[1]


def test_scores_come_from_the_checkpoint_when_the_run_directory_is_gone(
        ema_run, tmp_path: Path) -> None:
    """A best-<label> checkpoint copied out of its run still carries its best score."""
    best = ema_run[0].parent / "best-fid.safetensors"
    alone = tmp_path / "best-fid.safetensors"
    shutil.copy(best, alone)
    result = export(alone, tmp_path / "exported")
    assert result.exit_code == 0, result.output
    card = (tmp_path / "exported" / "README.md").read_text()
    value = read_checkpoint(alone).trainer.best.value
    assert f"| fid | fid | {value:.4f} | 4 |" in card
    assert "the checkpoint's best metric" in card


# -- refusals ----------------------------------------------------------------------------

def tampered(folder: Path, tmp_path: Path, edit) -> Path:
    copy = copy_of(folder, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def _set(path: str, value: Any):
    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return edit


_DELETE = object()


@pytest.mark.parametrize(("edit", "says"), [
    (_set("extra", 1), "$.extra: unknown key"),
    (_set("image.chanels", 1), "$.image.chanels: unknown key, did you mean 'channels'?"),
    (_set("step", _DELETE), "$.step: required key is missing"),
    (_set("step", "4"), "$.step: expected an integer"),
    (_set("conditional", 1), "$.conditional: expected true or false"),
    (_set("weights.ema", "something_else"), "$.weights.ema"),
    (_set("format_version", 2), "written by a newer ganforge"),
    (_set("format", "diffusers"), "not a ganforge export config"),
    (_set("generator.params.widht", 8), "$.generator.params.widht: unknown key"),
    (_set("generator.use", "nosuch:dcgan"), "$.plugins.dcgan: the generator's plugin is "
                                            "'nosuch'"),
    (lambda c: c.update(generator={**c["generator"], "use": "nosuch:dcgan"},
                        plugins={"nosuch": {"distribution": "nosuch-gan", "version": "1.0"}}),
     "no plugin 'nosuch' is loaded (is its distribution installed?); pip install "
     "nosuch-gan==1.0"),
    (_set("latent.dim", 17), "latent.dim is 17, the generator takes 16"),
    (_set("generator.params.width", 16), "does not match"),
])
def test_tampered_config_is_refused_in_one_line(ema_run, tmp_path: Path, edit, says) -> None:
    folder = tampered(ema_run[1], tmp_path, edit)
    result = invoke("sample", folder, "--out", tmp_path / "x.png", "--device", "cpu")
    line = one_line_error(result, says)
    assert "config.json" in line or "model.safetensors" in line
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ganforge.GanforgeError):
        ganforge.load_generator(folder)


@pytest.mark.parametrize("text", ['{"format": "ganforge-generator", "format": "x"}',
                                  "not json", '{"step": NaN}', "[1, 2]", ""])
def test_config_that_is_not_one_json_object_is_refused(ema_run, tmp_path: Path,
                                                       text: str) -> None:
    folder = copy_of(ema_run[1], tmp_path)
    (folder / "config.json").write_text(text)
    one_line_error(invoke("sample", folder, "--device", "cpu"), "config.json")


def test_missing_config_is_not_an_export(ema_run, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    one_line_error(invoke("sample", tmp_path / "folder"), "not a folder written by ganforge "
                   "export")
    run = ema_run[0].parent.parent
    one_line_error(invoke("sample", run), "give one of its checkpoints")


def _nan_weight(tensors: dict[str, torch.Tensor]) -> None:
    key = next(k for k in tensors if k.startswith("generator_ema.") and k.endswith("weight"))
    tensors[key] = torch.full_like(tensors[key], float("nan"))


def _stray(tensors: dict[str, torch.Tensor]) -> None:
    tensors["discriminator.main.0.weight"] = torch.zeros(2)


def _missing(tensors: dict[str, torch.Tensor]) -> None:
    del tensors[next(k for k in tensors if k.startswith("generator."))]


def _reshaped(tensors: dict[str, torch.Tensor]) -> None:
    key = next(k for k in tensors if k.startswith("generator.") and k.endswith("weight"))
    tensors[key] = tensors[key].flatten()


@pytest.mark.parametrize(("edit", "says"), [
    (_nan_weight, "non-finite values"), (_stray, "is not under generator."),
    (_missing, "generator does not match: missing"), (_reshaped, "shape"),
])
def test_tampered_weights_are_refused_in_one_line(ema_run, tmp_path: Path, edit,
                                                  says: str) -> None:
    folder = copy_of(ema_run[1], tmp_path)
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors")
    # the raw G is checked even when the EMA is loaded, and the reverse
    for flags in ([], ["--no-ema"]):
        one_line_error(invoke("sample", folder, "--device", "cpu", *flags),
                       "model.safetensors", says)


@pytest.mark.parametrize("data", [b"", b"\x80\x04pickle", b"\x10\x00\x00\x00\x00\x00\x00\x00{"])
def test_weights_that_are_not_safetensors_are_refused(ema_run, tmp_path: Path,
                                                      data: bytes) -> None:
    folder = copy_of(ema_run[1], tmp_path)
    (folder / "model.safetensors").write_bytes(data)
    one_line_error(invoke("sample", folder, "--device", "cpu"), "model.safetensors")


def test_truncated_weights_are_refused(ema_run, tmp_path: Path) -> None:
    folder = copy_of(ema_run[1], tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-100])
    one_line_error(invoke("sample", folder, "--device", "cpu"), "model.safetensors")


def test_export_refuses_a_folder_that_is_not_empty(ema_run, tmp_path: Path) -> None:
    checkpoint, _ = ema_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    one_line_error(export(checkpoint, out), "is not empty", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    # --force writes the exported files and touches nothing else
    result = export(checkpoint, out, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPORTED_FILES, "mine.txt"])
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "file").write_text("")
    one_line_error(export(checkpoint, out / "file"), "is a file")


def test_export_refuses_a_missing_or_broken_checkpoint(tmp_path: Path) -> None:
    one_line_error(export(tmp_path / "missing.safetensors", tmp_path / "a"), "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x80\x04not a checkpoint")
    one_line_error(export(broken, tmp_path / "b"), "broken.safetensors", "pickle")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- the Hub -----------------------------------------------------------------------------

class RecordingApi:
    """Stands in for ``huggingface_hub.HfApi``: records the calls and what the uploaded
    folder held at upload time."""

    calls: list[tuple[str, tuple, dict]] = []
    uploaded: dict[str, bytes] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def create_repo(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("create_repo", args, kwargs))
        return f"https://huggingface.co/{args[0]}"

    def upload_folder(self, **kwargs: Any) -> Any:
        self.calls.append(("upload_folder", (), kwargs))
        folder = Path(kwargs["folder_path"])
        RecordingApi.uploaded = {p.name: p.read_bytes() for p in folder.iterdir()
                                 if p.name in kwargs["allow_patterns"]}

        class Info:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"
        return Info()


class OfflineApi(RecordingApi):
    def create_repo(self, *args: Any, **kwargs: Any) -> str:
        raise ConnectionError("Failed to resolve 'huggingface.co'")


def test_push_uploads_the_exported_folder(ema_run, tmp_path: Path, monkeypatch) -> None:
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    out = tmp_path / "out"
    result = export(ema_run[0], out, "--push-to-hub", "me/digits-dcgan", "--private")
    assert result.exit_code == 0, result.output
    assert "pushed to me/digits-dcgan: https://huggingface.co/me/digits-dcgan/commit/abc" \
        in result.output
    (create, args, kwargs), (upload, _, uploaded) = RecordingApi.calls
    assert create == "create_repo" and args == ("me/digits-dcgan",)
    assert kwargs == {"repo_type": "model", "private": True, "exist_ok": True}
    assert upload == "upload_folder" and uploaded["repo_id"] == "me/digits-dcgan"
    assert Path(uploaded["folder_path"]) == out
    assert sorted(uploaded["allow_patterns"]) == sorted(EXPORTED_FILES)
    assert RecordingApi.uploaded == {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(RecordingApi.uploaded) == sorted(EXPORTED_FILES)


def test_push_while_offline_is_one_line_and_keeps_the_folder(ema_run, tmp_path: Path,
                                                             monkeypatch) -> None:
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "HfApi", OfflineApi)
    out = tmp_path / "out"
    result = export(ema_run[0], out, "--push-to-hub", "me/digits-dcgan")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and lines[-1].startswith("error: ")
    assert "'me/digits-dcgan'" in lines[-1] and "ConnectionError" in lines[-1]
    assert "kept at" in lines[-1]
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORTED_FILES)


def test_push_with_the_real_client_in_offline_mode(ema_run, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "GANFORGE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("HF_TOKEN", None)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "ganforge", "export", str(ema_run[0]),
                           "--out", str(out), "--device", "cpu", "--push-to-hub",
                           "me/digits-dcgan"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not push") and "'me/digits-dcgan'" in last
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORTED_FILES)


def test_push_without_huggingface_hub_says_how_to_install(ema_run, tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    one_line_error(export(ema_run[0], tmp_path / "out", "--push-to-hub", "me/x"),
                   "pip install huggingface_hub")
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("repo", ["no-owner", "a/b/c", "me/bad name", "../x"])
def test_bad_repo_id_is_refused_before_exporting(ema_run, tmp_path: Path, repo: str) -> None:
    one_line_error(export(ema_run[0], tmp_path / "out", "--push-to-hub", repo),
                   "not a Hub repository id")
    assert not (tmp_path / "out").exists()


def test_export_is_listed_in_help() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "export" in result.output


def test_a_bit_flipped_in_the_exported_weights_is_refused(plain_run, tmp_path) -> None:
    folder = tmp_path / "damaged"
    shutil.copytree(plain_run[1], folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-9] ^= 0x40  # a bit of the last tensor's data, past the header
    weights.write_bytes(bytes(data))
    with pytest.raises(ganforge.CheckpointError, match=r"model\.safetensors: integrity check "
                                              r"failed: tensor group \"generator\" does not "
                                              r"have the SHA256 recorded"):
        ganforge.load_generator(folder, "cpu")
