"""Inputs of the sampling commands and of checkpoint readers that used to end in "internal
error" or a hang (issue 11, item 18): devices, output paths, image counts and seeds, a FIFO
or folder named like a checkpoint, and foreign files in ``checkpoints/``. Each is one
error line with exit code 2, and each is refused before the checkpoint is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

import ganforge.cli.latent_commands  # noqa: F401  (registers the commands on ``app``)
from ganforge.cli import app
from ganforge.errors import CheckpointError, UsageError
from ganforge.sampling import MAX_IMAGES, check_output_path
from ganforge.training.assembly import resolve_device
from ganforge.training.checkpoint_format import (
    latest_checkpoint,
    read_checkpoint,
    read_header,
    read_metadata,
)
from tests.conftest import one_error_line
from tests.test_ckpt_layout import make_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "step-0000006.safetensors")


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])




# -- devices --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "piece"), [
    ("mps", "run.device = 'mps' is not a device ganforge runs on; use auto, cpu, cuda or "
            "cuda:N"),
    ("cpu\n", "run.device = 'cpu\\n' is not a device"),
    ("CPU", "run.device = 'CPU' is not a device"),
    ("cuda:-1", "run.device = 'cuda:-1' is not a device"),
    ("", "run.device = '' is not a device"),
    ("cuda:99999", "run.device = 'cuda:99999' but "),
])
def test_unknown_devices_are_one_usage_line(name: str, piece: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_device(name)
    assert piece in str(info.value) and "\n" not in str(info.value)


def test_known_devices_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("device", ["mps", "cpu\n", "cuda:99999"])
def test_sample_with_a_bad_device(checkpoint: Path, tmp_path: Path, device: str) -> None:
    one_error_line(run("sample", checkpoint, "--out", tmp_path / "s.png", "--device", device),
                   "--device ")


# -- sample: output paths, counts, seeds ----------------------------------------------------

@pytest.mark.parametrize(("out", "piece"), [
    ("{tmp}/new-folder/", "is a folder; give a file name such as"),
    ("{tmp}", "is a folder"),
    ("{tmp}/grid.unknownext", "'.unknownext' is not an image format ganforge writes; use "
                              "one of .bmp, .jpeg, .jpg, .png, .tif, .tiff"),
    ("{tmp}/grid", "no suffix is not an image format"),
    ("{tmp}/a-file/grid.png", "is a file, not a folder"),
])
def test_sample_refuses_bad_out(checkpoint: Path, tmp_path: Path, out: str,
                                piece: str) -> None:
    (tmp_path / "a-file").write_text("x")
    one_error_line(run("sample", checkpoint, "--out", out.format(tmp=tmp_path)), "--out", piece)
    assert not (tmp_path / "new-folder").exists()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".TIFF"])
def test_sample_writes_every_accepted_format(checkpoint: Path, tmp_path: Path,
                                             suffix: str) -> None:
    out = tmp_path / f"grid{suffix}"
    result = run("sample", checkpoint, "--out", out, "--n", "4")
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)


@pytest.mark.parametrize(("args", "piece"), [
    (["--n", "2000000"], f"--n 2000000 is out of range: 1 to {MAX_IMAGES}"),
    (["--seed", str(10**23)], "--seed 100000000000000000000000 is out of range: 0 to 2**63 - 1"),
    (["--seed", str(2**63)], "--seed 9223372036854775808 is out of range"),
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--seed", "9" * 4000], "--seed 999999999999...(4000 digits) is out of range"),
])
def test_sample_bounds_n_and_seed(checkpoint: Path, tmp_path: Path, args: list[str],
                                  piece: str) -> None:
    out = tmp_path / "s.png"
    one_error_line(run("sample", checkpoint, "--out", out, *args), piece)
    assert not out.exists()


def test_sample_at_the_bounds(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    result = run("sample", checkpoint, "--out", out, "--n", MAX_IMAGES,
                 "--seed", 2**63 - 1)
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (64 * 34 + 2, 64 * 34 + 2)


def test_usage_is_checked_before_the_checkpoint_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    one_error_line(run("sample", missing, "--n", "2000000"), "--n")
    one_error_line(run("sample", missing, "--out", tmp_path), "--out")


# -- interpolate and arithmetic -------------------------------------------------------------

@pytest.mark.parametrize(("args", "piece"), [
    (["--rows", "100", "--steps", "100"], "--rows 100 x --steps 100 = 10000 images, over the "
                                          f"limit of {MAX_IMAGES}"),
    (["--rows", "10000000"], "--rows 10000000 is out of range"),
    (["--seed", str(10**23)], "--seed 100000000000000000000000 is out of range"),
    (["--frame-ms", str(10**9)], "--frame-ms 1000000000 is out of range: 10 to 60000"),
    (["--out", "{tmp}/walks/"], "--out '"),
    (["--out", "{tmp}/walk.xyz"], "'.xyz' is not an image format"),
    (["--gif", "{tmp}"], "--gif '"),
    (["--device", "mps"], "--device 'mps' is not a device"),
])
def test_interpolate_bounds(checkpoint: Path, tmp_path: Path, args: list[str],
                            piece: str) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "walk.png")]
    one_error_line(run("interpolate", checkpoint, *args), piece)
    assert not (tmp_path / "walk.png").exists()


@pytest.mark.parametrize(("args", "piece"), [
    (["--n", "2000000"], "--n 2000000 is out of range"),
    (["--seed", str(10**23)], "--seed 100000000000000000000000 is out of range"),
    (["--neighbours", str(10**6)], "--neighbours 1000000 is out of range: 0 to 64"),
    (["--noise", "inf"], "--noise inf is not a finite number"),
    (["--sheet", "{tmp}/sheets/"], "--sheet '"),
    (["--sheet", "{tmp}/sheet.png", "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8",
      "--out", "{tmp}/"], "--out '"),
])
def test_arithmetic_bounds(checkpoint: Path, tmp_path: Path, args: list[str],
                           piece: str) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    if "--sheet" not in args:
        args += ["--sheet", str(tmp_path / "sheet.png")]
    one_error_line(run("arithmetic", checkpoint, *args), piece)
    assert not (tmp_path / "sheet.png").exists()


@pytest.mark.parametrize(("field", "value", "piece"), [
    ("n", "abc", "n is 'abc', not an integer from 1 to 4096"),
    ("n", 10**30, "n is 1000000000000000000000000000000, not an integer"),
    ("seed", -4, "seed is -4, not an integer from 0 to 9223372036854775807"),
    ("seed", 1.5, "seed is 1.5, not an integer"),
])
def test_arithmetic_refuses_an_edited_sheet_record(checkpoint: Path, tmp_path: Path,
                                                   field: str, value: object,
                                                   piece: str) -> None:
    sheet = tmp_path / "sheet.png"
    result = run("arithmetic", checkpoint, "--sheet", sheet, "--n", "9")
    assert result.exit_code == 0, result.output
    record_path = sheet.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record[field] = value
    record_path.write_text(json.dumps(record))
    one_error_line(run("arithmetic", checkpoint, "--sheet", sheet, "--a", "0,1,2", "--b",
                       "3,4,5", "--c", "6,7,8", "--out", tmp_path / "fig.png"), piece)


# -- files named like checkpoints -----------------------------------------------------------

def in_subprocess(code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``folder`` as ``FOLDER`` in a fresh interpreter: a reader that
    blocks on a FIFO fails the test by timeout instead of hanging the suite."""
    source = f"from pathlib import Path\nFOLDER = Path({str(folder)!r})\n{textwrap.dedent(code)}"
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parent.parent)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_like_a_checkpoint_never_blocks(checkpoint: Path, tmp_path: Path) -> None:
    """``latest_checkpoint`` skips a FIFO (and a folder) named like a checkpoint; every
    reader, and ``ganforge sample``, refuses it in one line instead of blocking."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "step-0000004.safetensors").write_bytes(checkpoint.read_bytes())
    os.mkfifo(folder / "step-0000005.safetensors")
    (folder / "step-0000006.safetensors").mkdir()
    done = in_subprocess("""
        from ganforge.cli import main
        from ganforge.errors import CheckpointError
        from ganforge.training.checkpoint_format import (latest_checkpoint, read_checkpoint,
                                                         read_header, read_metadata)
        print(latest_checkpoint(FOLDER).name)
        for name in ("step-0000005.safetensors", "step-0000006.safetensors"):
            for read in (read_checkpoint, read_header, read_metadata):
                try:
                    read(FOLDER / name)
                except CheckpointError as exc:
                    print(exc)
        main(["sample", str(FOLDER / "step-0000005.safetensors"), "--out",
              str(FOLDER / "s.png")])
        """, folder)
    assert done.returncode == 2, done.stderr
    fifo, inner = folder / "step-0000005.safetensors", folder / "step-0000006.safetensors"
    assert done.stdout.splitlines() == [
        "step-0000004.safetensors",
        *[f"{fifo}: not a checkpoint: a FIFO, not a regular file"] * 3,
        *[f"{inner}: not a checkpoint: a folder, not a regular file"] * 3]
    assert done.stderr.strip().splitlines() == [
        f"error: {fifo}: not a checkpoint: a FIFO, not a regular file"]


def test_a_character_device_is_refused() -> None:
    with pytest.raises(CheckpointError, match="a character device, not a regular file"):
        read_checkpoint("/dev/zero")


def test_foreign_files_in_checkpoints_are_skipped(checkpoint: Path, tmp_path: Path) -> None:
    """Newest first: a safetensors file of another program, a ganforge-format file with
    crafted metadata, a renamed pickle; the newest real checkpoint is picked."""
    (tmp_path / "step-0000004.safetensors").write_bytes(checkpoint.read_bytes())
    save_file({"weight": torch.zeros(3)}, tmp_path / "step-0000009.safetensors")
    save_file({"w": torch.zeros(1)}, tmp_path / "step-0000008.safetensors",
              metadata={"ganforge.format": "1", "ganforge.step": "8",
                        "ganforge.recipe": "run = 5", "ganforge.trainer": "{}"})
    save_file({"w": torch.zeros(1)}, tmp_path / "step-0000007.safetensors",
              metadata={"ganforge.format": "1", "ganforge.step": "7",
                        "ganforge.recipe": "", "ganforge.trainer": '{"rollbacks": -5}'})
    (tmp_path / "step-0000005.safetensors").write_bytes(b"\x80\x04\x95" + bytes(40))
    assert latest_checkpoint(tmp_path) == tmp_path / "step-0000004.safetensors"
    for name in ("step-0000009", "step-0000008", "step-0000007", "step-0000005"):
        with pytest.raises(CheckpointError):
            read_metadata(tmp_path / f"{name}.safetensors")


def test_sample_of_a_foreign_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "step-0000009.safetensors"
    save_file({"weight": torch.zeros(3)}, path)
    one_error_line(run("sample", path, "--out", tmp_path / "s.png"),
                   "not a ganforge checkpoint (format null)")


def test_check_output_path_accepts_plain_files(tmp_path: Path) -> None:
    assert check_output_path(str(tmp_path / "new" / "a.png"), "--out") == \
        tmp_path / "new" / "a.png"
    assert check_output_path(tmp_path / "sheet.anything", "--sheet", image=False) == \
        tmp_path / "sheet.anything"
    assert read_header(make_checkpoint(tmp_path / "c.safetensors")).step == 6
