"""A damaged LSUN lmdb ends in one line naming its data.mdb: a truncated file is refused
before lmdb reads a page past its end (which kills the process with SIGBUS), lmdb's errors
on corrupted pages become DataErrors naming the file, and the key walk runs in a child
process, so that a page on which lmdb itself crashes (SIGABRT) is one line too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets import lmdb_index
from ganforge.datasets.inspection import scan_dataset
from ganforge.errors import DataError
from tests.lsun_data import make_lsun, zero_leaf_page, zero_root_page

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


#: What building the index did in the process itself before the walk moved to a child.
OLD_KEY_WALK = """
import sys, lmdb
env = lmdb.open(sys.argv[1], readonly=True, lock=False)
with env.begin() as txn:
    print(sum(1 for _ in txn.cursor().iternext(keys=True, values=False)))
"""


def test_a_zeroed_leaf_page_while_indexing_is_one_line(plugins, tmp_path: Path) -> None:
    path = make_lsun(tmp_path / "lsun", webp=100, jpeg=100, bad=False)  # ~100 leaf pages
    zero_leaf_page(path)
    data = path / "data.mdb"
    # The damage is of the kind that kills a process: lmdb's cursor asserts that the next
    # page is a leaf. Both checks run in child processes (with a timeout) so that a
    # regression fails this test instead of ending the test session.
    walk = subprocess.run([sys.executable, "-c", OLD_KEY_WALK, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert walk.returncode == -signal.SIGABRT, (walk.returncode, walk.stderr)
    result = subprocess.run([sys.executable, "-m", "ganforge",
                             *run_lsun(tmp_path / "lsun", tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.splitlines() == [
        f"error: {data}: the database is damaged (reading its keys crashed lmdb: SIGABRT); "
        "copy or download it again"]
    assert not (tmp_path / "lsun" / ".ganforge-index" / path.name / "index.json").exists()
    # Safe in this process now: lmdb's own message is kept as the cause (shown by --debug).
    with pytest.raises(DataError) as raised:
        lsun(plugins, tmp_path / "lsun")
    assert "crashed lmdb: SIGABRT" in str(raised.value)
    assert "IS_LEAF" in str(raised.value.__cause__)


@pytest.mark.parametrize(("code", "message"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
     "the database is damaged (reading its keys crashed lmdb: SIGSEGV); "
     "copy or download it again"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
     "reading its keys was stopped by SIGKILL (killed from outside, out of memory for one; "
     "not a sign of damage); try again"),
    ("raise SystemExit('no module named lmdb')",
     "the process reading its keys failed with exit status 1: no module named lmdb"),
])
def test_the_end_of_the_indexing_process_is_one_line(plugins, tmp_path: Path, monkeypatch,
                                                     code: str, message: str) -> None:
    path = make_lsun(tmp_path, webp=2, jpeg=2, bad=False)
    monkeypatch.setattr(lmdb_index, "_child_command",
                        lambda lmdb_path: [sys.executable, "-c", code])
    with pytest.raises(DataError) as raised:
        lsun(plugins, tmp_path)
    assert str(raised.value) == f"{path / 'data.mdb'}: {message}"


def test_keys_streamed_from_the_child_in_chunks_keep_lmdbs_order(plugins, tmp_path: Path,
                                                                  monkeypatch) -> None:
    path = make_lsun(tmp_path, webp=10, jpeg=10, bad=True)
    monkeypatch.setattr(lmdb_index, "CHUNK", 7)  # 23 keys: messages of 7, 7, 7 and 2 keys
    advanced: list[int] = []
    receive = lmdb_index._receive_keys
    monkeypatch.setattr(lmdb_index, "_receive_keys",
                        lambda stream, advance: receive(stream, advanced.append))
    dataset = lsun(plugins, tmp_path)
    with lmdb_index.open_lmdb(path).begin() as txn:  # this process's handle
        expected = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
    assert [dataset.locate(i)[1] for i in range(len(dataset))] == expected
    assert advanced == [7, 14, 21, 23]  # the progress bar moves with every message
