"""A damaged LSUN lmdb ends in one line naming its data.mdb: a truncated file is refused
before lmdb reads a page past its end (which kills the process with SIGBUS), and lmdb's
errors on corrupted pages become DataErrors naming the file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets import lmdb_index
from ganforge.datasets.inspection import scan_dataset
from ganforge.errors import DataError
from tests.lsun_data import make_lsun, zero_root_page

ROOT = Path(__file__).parent.parent


def run_lsun(root: Path, out: Path, *extra: str) -> list[str]:
    """The command line of a tiny DCGAN run on the LSUN folder ``root``."""
    return ["run", str(ROOT / "recipes" / "dcgan_lsun.toml"), "--out", str(out), "--quiet",
            "--set", f"dataset.root={root}", "--set", "run.steps=1",
            "--set", "run.batch_size=8", "--set", "generator.width=4",
            "--set", "discriminator.width=4", *extra]


def lsun(plugins, root: Path, **params):
    return plugins.registry.create("dataset", "lsun", {"root": str(root), "image_size": 32,
                                                       **params})


def test_a_truncated_data_mdb_is_one_line_naming_the_file(tmp_path: Path) -> None:
    data = make_lsun(tmp_path / "lsun", webp=30, jpeg=30, bad=False) / "data.mdb"
    size = data.stat().st_size
    os.truncate(data, size // 2)
    # In a child process: without the check, lmdb's read past the end is a SIGBUS that
    # would end the test session itself.
    result = subprocess.run([sys.executable, "-m", "ganforge",
                             *run_lsun(tmp_path / "lsun", tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.splitlines() == [
        f"error: {data}: truncated: lmdb needs {size} bytes but the file has {size // 2}; "
        "copy or download it again"]


def test_corrupted_pages_while_indexing_name_the_file(plugins, tmp_path: Path) -> None:
    path = make_lsun(tmp_path, webp=4, jpeg=4, bad=False)
    zero_root_page(path)
    data = re.escape(str(path / "data.mdb"))
    with pytest.raises(DataError, match=rf"^{data}: cannot read its keys: "
                                        r".*MDB_CORRUPTED[^\n]*; the database is damaged"):
        lsun(plugins, tmp_path)


def test_corrupted_pages_in_a_run_are_one_line(tmp_path: Path) -> None:
    path = make_lsun(tmp_path / "lsun", webp=4, jpeg=4, bad=False)
    zero_root_page(path)
    result = CliRunner().invoke(app, run_lsun(tmp_path / "lsun", tmp_path / "run"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path / 'data.mdb'}: cannot read its keys"), \
        result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_corrupted_pages_while_reading_images_name_the_file_and_key(plugins, tmp_path: Path,
                                                                    monkeypatch) -> None:
    path = make_lsun(tmp_path, webp=4, jpeg=4, bad=False)
    lsun(plugins, tmp_path)  # the key index is cached while the database is sound
    lmdb_index.close_lmdb_handles()
    zero_root_page(path)  # size and mtime kept: the cached index still matches

    def must_not_walk(*args, **kwargs):
        raise AssertionError("the key index was rebuilt")

    monkeypatch.setattr(lmdb_index, "_read_keys", must_not_walk)
    # A damaged database is not a bad image: "skip" must not hide it image after image.
    dataset = lsun(plugins, tmp_path, on_error="skip")
    key = dataset.locate(0)[1].decode()
    data = re.escape(str(path / "data.mdb"))
    with pytest.raises(DataError, match=rf"^{data}: cannot read image "
                                        rf"bedroom_train:{key}: .*MDB_CORRUPTED"):
        dataset[0]
    # From a loader worker too (data check scans on all cores): the same one line.
    with pytest.raises(DataError, match=rf"^{data}: cannot read image "
                                        r"bedroom_train:[^\n]*$"):
        scan_dataset(dataset, workers=1, progress=False)
