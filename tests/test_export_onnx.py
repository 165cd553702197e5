"""``ganforge export --onnx``: generator.onnx beside the safetensors, run here with ONNX
Runtime against the PyTorch generator (unconditional with an EMA, conditional); a failed
export or check is one line and leaves the folder as written; without onnxruntime the
option is refused before anything is read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.sharing import onnx_export
from ganforge.sharing.onnx_export import ONNX_NAME, TOLERANCE

from .conftest import CONDITIONAL_QUICKSTART, QUICKSTART, one_error_line

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

#: The quickstart, tiny: a few steps of a narrow DCGAN on the digits, with an EMA of G.
TINY = ["run.steps=4", "run.batch_size=8", "generator.width=8", "discriminator.width=8",
        "generator.latent_dim=16", "run.checkpoint_every=4", "run.sample_every=4",
        "run.log_every=2", "run.device=cpu", "run.sample_count=4", "ema.enabled=true"]


def invoke(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def train(out: Path, recipe: Path) -> Path:
    sets = [x for o in TINY for x in ("--set", o)]
    result = invoke("run", recipe, "--out", out, "--quiet", *sets)
    assert result.exit_code == 0, result.output
    return out / "checkpoints" / "step-0000004.safetensors"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("onnx") / "run", QUICKSTART)


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_export_onnx_matches_the_ema_generator(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    result = invoke("export", checkpoint, "--out", out, "--device", "cpu", "--n", "4",
                    "--onnx")
    assert result.exit_code == 0, result.output
    assert f"wrote {ONNX_NAME} (opset 17, inputs z; the ema weights)" in result.output
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    generator = ganforge.load_generator(out, "cpu")  # the EMA, as the folder loads it
    z = generator.sample_latent(5, torch.Generator().manual_seed(7), "cpu")  # batch 5: dynamic
    with torch.no_grad():
        expected = generator(z).numpy()
    got = run_onnx(out / ONNX_NAME, {"z": z.numpy()})
    assert got.shape == (5, 1, 32, 32)
    ema_diff = np.abs(got - expected).max()
    assert ema_diff <= TOLERANCE
    raw = ganforge.load_generator(out, "cpu", ema=False)
    with torch.no_grad():  # the EMA, not the raw G (close after 4 steps, not that close)
        assert np.abs(raw(z).numpy() - got).max() > 10 * ema_diff
    model = onnx.load(str(out / ONNX_NAME))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["weights"] == "ema" and meta["step"] == "4" and meta["latent_dim"] == "16"
    assert model.opset_import[0].version == 17
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## ONNX" in card and "moving average (EMA)" in card


def test_export_onnx_conditional_generator_takes_labels(tmp_path: Path) -> None:
    checkpoint = train(tmp_path / "run", CONDITIONAL_QUICKSTART)
    out = tmp_path / "exported"
    done = ganforge.export(checkpoint, out, n=4, device="cpu", onnx=True)
    assert done.onnx is not None and done.onnx.inputs == ("z", "labels")
    assert done.onnx.max_abs_diff <= TOLERANCE and done.onnx.checked == 8
    generator = ganforge.load_generator(out, "cpu")
    z = generator.sample_latent(6, torch.Generator().manual_seed(3), "cpu")
    labels = torch.tensor([9, 0, 3, 3, 5, 1])
    with torch.no_grad():
        expected = generator(z, labels).numpy()
    got = run_onnx(out / ONNX_NAME, {"z": z.numpy(), "labels": labels.numpy()})
    assert np.abs(got - expected).max() <= TOLERANCE
    other = run_onnx(out / ONNX_NAME, {"z": z.numpy(), "labels": (labels + 1).numpy() % 10})
    assert np.abs(other - got).max() > 0  # the labels reach the graph


def test_a_failed_check_or_export_is_one_line_and_the_folder_stays(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)  # no difference can pass
    out = tmp_path / "mismatch"
    result = invoke("export", checkpoint, "--out", out, "--device", "cpu", "--n", "4", "--onnx")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "differ from PyTorch's" in lines[0], result.output
    assert f"no {ONNX_NAME} written" in lines[0]
    assert not (out / ONNX_NAME).exists()
    assert {"model.safetensors", "config.json", "README.md", "samples.png"} <= {
        p.name for p in out.iterdir()}
    ganforge.load_generator(out, "cpu")  # the folder is complete
    monkeypatch.undo()

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("unsupported operator aten::magic\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    out = tmp_path / "failed"
    result = invoke("export", checkpoint, "--out", out, "--device", "cpu", "--n", "4", "--onnx")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "aten::magic" in lines[0] and "more detail" not in lines[0]
    assert not (out / ONNX_NAME).exists() and (out / "model.safetensors").is_file()


def test_force_export_without_onnx_removes_an_earlier_onnx(checkpoint: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "exported"
    out.mkdir()
    (out / ONNX_NAME).write_bytes(b"an earlier export's")
    result = invoke("export", checkpoint, "--out", out, "--device", "cpu", "--n", "4",
                    "--force")
    assert result.exit_code == 0, result.output
    assert f"removed the {ONNX_NAME}" in result.output and not (out / ONNX_NAME).exists()


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_onnx_refused_in_one_line_when_not_installed(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    out = tmp_path / "exported"
    result = invoke("export", checkpoint, "--out", out, "--device", "cpu", "--onnx")
    one_error_line(result, "--onnx needs", missing, "pip install 'ganforge[onnx]'")
    assert not out.exists()
    with pytest.raises(ganforge.UsageError, match=f"onnx needs {missing}"):
        ganforge.export(checkpoint, out, device="cpu", onnx=True)
    assert not out.exists()
