"""Checkpoint files: atomic writes, choosing the newest complete one, refusing bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ganforge.errors import CheckpointError, StorageError
from ganforge.training.checkpoint_checks import load_module_state
from ganforge.training.checkpoint_format import (
    checkpoint_name,
    latest_checkpoint,
    read_checkpoint,
    read_metadata,
    rotate,
    write_checkpoint,
)


def write(path: Path, step: int, value: float = 1.0) -> Path:
    return write_checkpoint(path, {"w": torch.full((3,), value)}, step=step, recipe_toml="",
                            versions={}, optimizers={})


def test_write_is_atomic_and_reads_back(tmp_path: Path) -> None:
    path = write(tmp_path / checkpoint_name(7), 7, 2.5)
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000007.safetensors"]
    contents = read_checkpoint(path)
    assert contents.step == 7 and torch.equal(contents.tensors["w"], torch.full((3,), 2.5))


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / checkpoint_name(1), 1)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(StorageError, match=f"cannot write {path}: No space left on device"):
        write(path, 1, 9.0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_latest_skips_damaged_and_temporary_files(tmp_path: Path) -> None:
    write(tmp_path / checkpoint_name(1), 1)
    write(tmp_path / checkpoint_name(2), 2)
    (tmp_path / checkpoint_name(3)).write_bytes(b"")  # truncated to nothing
    (tmp_path / f".{checkpoint_name(4)}.tmp").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) == tmp_path / checkpoint_name(2)
    assert latest_checkpoint(tmp_path / "missing") is None


def test_rotation_never_deletes_protected(tmp_path: Path) -> None:
    paths = [write(tmp_path / checkpoint_name(s), s) for s in (1, 2, 3, 4)]
    removed = rotate(tmp_path, keep_last=2, protect=(paths[0],))
    assert removed == [paths[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in (paths[0], *paths[2:])]


@pytest.mark.parametrize("content", [
    b"",
    b"\x80\x04\x95pickle-data-renamed",            # a pickle renamed .safetensors
    struct.pack("<Q", 0) + b"{}",                   # header length 0
    struct.pack("<Q", 7) + b"{}",                   # header longer than the file
    struct.pack("<Q", 2**64 - 1) + b"{}",           # absurd header length
    struct.pack("<Q", 200 * 1024 * 1024) + b"{}",   # over 100 MB
    struct.pack("<Q", 4) + b"\xff\xfe{}",           # not UTF-8
])
def test_hostile_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_checkpoint(path)


def test_foreign_safetensors_is_not_a_ganforge_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a ganforge checkpoint"):
        read_metadata(path)


def test_module_state_mismatches_named_key_by_key() -> None:
    module = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    good = {k: v.clone() for k, v in state.items()}
    state["0.weight"] = torch.zeros(4, 2)
    state["1.bias"] = torch.tensor([float("nan")])
    state.pop("0.bias")
    state["extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_module_state(module, state, "generator", "ck.safetensors")
    message = str(info.value)
    for piece in ("missing 0.bias", "unexpected extra", "0.weight: shape [4, 2] in checkpoint, "
                  "[3, 2] in model", "1.bias: non-finite values"):
        assert piece in message
    assert all(torch.equal(module.state_dict()[k], good[k]) for k in good)  # nothing loaded
