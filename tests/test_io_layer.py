"""ganforge.io, the file layer at the bottom: it imports nothing above it, its modules stay
small, the old import paths are the very same objects, and a checkpoint written, read and
rotated through the new paths behaves as before."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganforge.io
from ganforge.errors import CheckpointError
from ganforge.io import (
    checkpoint_files,
    checkpoint_names,
    checkpoint_schema,
    export_config,
    files,
    integrity,
    model_folder,
    refusals,
    rng_states,
    safetensors_read,
)

IO_DIR = Path(ganforge.io.__file__).parent
#: What a module of ganforge.io may import from ganforge.
ALLOWED = ("ganforge.core.errors", "ganforge.core.structuring", "ganforge.core.suggest",
           "ganforge.io")


def ganforge_imports(path: Path) -> set[str]:
    """Every ganforge module ``path`` imports (anywhere in it), relative imports resolved."""
    package = "ganforge.io"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ganforge")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("ganforge"):
                found.add(name)
                # ``from .. import training`` names a module too
                found |= {f"{name}.{alias.name}" for alias in node.names
                          if name in ("ganforge", "ganforge.io") and alias.name != "*"
                          and importlib.util.find_spec(f"{name}.{alias.name}") is not None}
    return found


def test_io_imports_only_the_allowed_modules() -> None:
    modules = sorted(IO_DIR.glob("*.py"))
    assert len(modules) >= 10
    for path in modules:
        for name in ganforge_imports(path):
            assert name == "ganforge.io" or name.startswith(ALLOWED), (path.name, name)


def test_the_import_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from ..training.rng import capture_rng\nfrom .. import recipe\n")
    assert ganforge_imports(bad) >= {"ganforge.training.rng", "ganforge.recipe"}


def test_io_modules_are_under_400_lines() -> None:
    for path in IO_DIR.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) < 400, path.name


def test_importing_the_file_helpers_does_not_import_torch() -> None:
    code = ("import sys, ganforge.io.files, ganforge.files, ganforge.recipe.model; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_public_names_resolve_lazily() -> None:
    assert sorted(ganforge.io.__all__) == sorted(ganforge.io._EXPORTS)
    for name in ganforge.io.__all__:
        module = importlib.import_module(f"ganforge.io.{ganforge.io._EXPORTS[name]}")
        assert getattr(ganforge.io, name) is getattr(module, name)
    with pytest.raises(AttributeError):
        _ = ganforge.io.no_such_name


def test_old_paths_are_the_new_objects() -> None:
    from ganforge import files as old_files
    from ganforge.sharing import config as old_config
    from ganforge.sharing import weights as old_weights
    from ganforge.training import checkpoint_format as old
    from ganforge.training import checkpoint_integrity as old_integrity
    from ganforge.training import rng as old_rng

    assert old_files is files and old_integrity is integrity and old_config is export_config
    assert old.read_checkpoint is checkpoint_files.read_checkpoint
    assert old.write_checkpoint is checkpoint_files.write_checkpoint
    assert old.read_header is checkpoint_files.read_header
    assert old.TrainerMeta is checkpoint_schema.TrainerMeta
    assert old.rotate is checkpoint_names.rotate
    assert old.latest_checkpoint is checkpoint_names.latest_checkpoint
    assert old.EVALUATIONS_SUFFIX == checkpoint_names.EVALUATIONS_SUFFIX
    assert old.refusal is refusals.refusal and old.quoted is refusals.quoted
    assert old.open_regular is safetensors_read.open_regular
    assert old.integrity is integrity
    assert old_weights.read_weights is model_folder.read_weights
    assert old_weights.weights_bytes is model_folder.weights_bytes
    assert old_rng.rng_state_problems is rng_states.rng_state_problems
    for name in old.__all__:
        assert hasattr(old, name), name


def test_patching_the_old_path_reaches_the_reader(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ganforge.training import checkpoint_format as old

    path = checkpoint_files.write_checkpoint(
        tmp_path / "step-0000001.safetensors", {"w": torch.ones(2)}, step=1, recipe_toml="",
        versions={}, optimizers={})
    original = safetensors_read.load_bytes

    def refuse(data: bytes) -> dict[str, torch.Tensor]:
        raise ValueError("patched")

    monkeypatch.setattr(old, "load_bytes", refuse)
    assert safetensors_read.load_bytes is refuse
    with pytest.raises(CheckpointError, match="cannot read tensors: patched"):
        checkpoint_files.read_checkpoint(path)
    monkeypatch.undo()
    assert safetensors_read.load_bytes is original
    assert checkpoint_files.read_checkpoint(path).step == 1


def test_write_read_rotate_through_the_new_paths(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        checkpoint_files.write_checkpoint(
            folder / checkpoint_names.checkpoint_name(step),
            {"generator/w": torch.full((3,), float(step))}, step=step,
            recipe_toml="[run]\nsteps = 3\n", versions={"ganforge": "0"}, optimizers={},
            trainer={"batches_seen": step})
    scores = folder / (checkpoint_names.checkpoint_name(1) + checkpoint_names.EVALUATIONS_SUFFIX)
    scores.write_text("{}\n")
    newest = checkpoint_names.latest_checkpoint(folder)
    assert newest == folder / "step-0000003.safetensors"
    contents = checkpoint_files.read_checkpoint(newest)
    assert contents.step == 3 and contents.trainer.batches_seen == 3
    assert contents.recipe_table == {"run": {"steps": 3}}
    assert torch.equal(contents.section("generator")["w"], torch.full((3,), 3.0))
    assert integrity.INTEGRITY_KEY in checkpoint_files.read_metadata(newest)
    removed = checkpoint_names.rotate(folder, keep_last=1)
    assert [p.name for p in removed] == ["step-0000001.safetensors", "step-0000002.safetensors"]
    assert not scores.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000003.safetensors"]
    # a flipped byte in the tensor data is refused, naming the group
    newest.write_bytes(newest.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="integrity check failed: tensor group \"generator\""):
        checkpoint_files.read_checkpoint(newest)


def test_weights_round_trip_through_the_model_folder(tmp_path: Path) -> None:
    path = tmp_path / model_folder.WEIGHTS_NAME
    state = {"w": torch.arange(4.0), "b": torch.zeros(1)}
    files.write_bytes_atomic(path, model_folder.weights_bytes({model_folder.RAW_PREFIX: state}))
    read = model_folder.read_weights(path, (model_folder.RAW_PREFIX,))
    assert set(read) == {"generator"} and torch.equal(read["generator"]["w"], state["w"])
    with pytest.raises(CheckpointError, match="holds no generator_ema"):
        model_folder.read_weights(path, ("generator", model_folder.EMA_WEIGHTS))
