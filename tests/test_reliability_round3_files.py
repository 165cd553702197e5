"""Issue 23, "Reliability, round three": files and checkpoints.

Bounded allocations from any file (a checkpoint's recipe, an exported folder's config, a
statistics archive), integrity hashes of checkpoint tensors, ``--resume`` that never passes
over a damaged checkpoint, prepared folders that never overwrite what ganforge did not
write and name a damaged shard, and a few values a checkpoint may not hold.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
import torch
from ganforge_dcgan.generator import DCGANGenerator
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ganforge import load_plugins
from ganforge.cli import app
from ganforge.datasets.prepared import prepare_dataset
from ganforge.errors import CheckpointError, DataError, UsageError
from ganforge.evaluation.npz_stats import load_reference_npz
from ganforge.recipe import build_recipe, load_recipe
from ganforge.sharing import export_checkpoint
from ganforge.sharing.loading import load_generator as load_any_generator
from ganforge.training import train
from ganforge.training.assembly import build_generator, load_generator
from ganforge.training.checkpoint_format import (
    read_checkpoint,
    read_header,
    write_checkpoint,
)
from tests.conftest import TINY_RECIPE

#: A DCGAN G this wide overflows torch's size computation even on the meta device.
OVERFLOWING_WIDTH = 2**27 + 1


# -- helpers ---------------------------------------------------------------------------------

def tiny_checkpoint(path: Path, *, generator: dict[str, Any] | None = None,
                    claims: dict[str, Any] | None = None, step: int = 6,
                    edit: Any = None) -> Path:
    """A checkpoint of the tiny recipe's untrained G (``generator``: its params changed);
    ``claims`` changes what the embedded recipe says of G; ``edit`` may change the state."""
    registry = load_plugins().registry
    table = tomllib.loads(TINY_RECIPE)
    table["generator"].update(generator or {})
    recipe = build_recipe(table, registry)
    state = {f"generator/{k}": v for k, v in build_generator(recipe, registry)
             .state_dict().items()}
    if edit is not None:
        edit(state)
    saved = recipe.to_dict()
    saved["generator"].update(claims or {})
    return write_checkpoint(path, state, step=step, recipe_toml=tomli_w.dumps(saved),
                            versions={}, optimizers={}, trainer={"batches_seen": step})


@pytest.fixture
def no_big_generator(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the device of every DCGAN G built; one wider than 1024 built anywhere but
    on ``meta`` fails the test at once instead of allocating gigabytes."""
    seen: list[str] = []
    original = DCGANGenerator.__init__

    def init(self, params, *args, **kwargs):
        device = torch.empty(0).device.type
        seen.append(device)
        if params.width > 1024 and device != "meta":
            raise AssertionError(f"a generator of width {params.width} built on {device}")
        original(self, params, *args, **kwargs)

    monkeypatch.setattr(DCGANGenerator, "__init__", init)
    return seen


def one_line(result: Any, *pieces: str) -> str:
    """The CLI failed with exit code 2 and printed one line holding every piece."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    for piece in pieces:
        assert piece in lines[0], lines[0]
    return lines[0]


def refusal(error: type[Exception], call: Any, *pieces: str) -> str:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for piece in pieces:
        assert piece in message, message
    return message


def data_span(path: Path, name: str) -> tuple[int, int]:
    """Where tensor ``name``'s bytes lie in safetensors file ``path``."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    begin, end = json.loads(raw[8:8 + length])[name]["data_offsets"]
    return 8 + length + begin, 8 + length + end


def flip_bit(path: Path, name: str) -> None:
    """Flip the lowest bit of tensor ``name``'s first byte (a float stays finite)."""
    data = bytearray(path.read_bytes())
    data[data_span(path, name)[0]] ^= 1
    path.write_bytes(bytes(data))


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


# -- 1. memory bounds of a checkpoint's recipe and an exported folder's config ---------------

def hostile_checkpoint(path: Path) -> Path:
    """2.7 KB: a G of width 1 and latent size 1 whose recipe claims width 2**27 + 1."""
    return tiny_checkpoint(path, generator={"latent_dim": 1, "width": 1},
                           claims={"width": OVERFLOWING_WIDTH})


def test_a_recipe_overflowing_the_meta_check_is_refused(tmp_path: Path,
                                                        no_big_generator: list[str]) -> None:
    path = hostile_checkpoint(tmp_path / "step-0000006.safetensors")
    assert path.stat().st_size < 10_000
    no_big_generator.clear()
    message = refusal(CheckpointError, lambda: load_generator(path, load_plugins().registry),
                      str(path), "cannot check the size of its networks",
                      "Storage size calculation overflowed")
    assert no_big_generator == ["meta"], message  # nothing real was built
    one_line(CliRunner().invoke(app, ["sample", str(path), "--out", str(tmp_path / "s.png")]),
             "cannot check the size")
    assert not (tmp_path / "s.png").exists()
    one_line(CliRunner().invoke(app, ["export", str(path), "--out", str(tmp_path / "e")]),
             "cannot check the size")
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())


def exported(tmp_path: Path, **kwargs: Any) -> Path:
    checkpoint = tiny_checkpoint(tmp_path / "step-0000006.safetensors", **kwargs)
    return export_checkpoint(checkpoint, tmp_path / "exported", load_plugins(), n=4).folder


def test_an_exported_config_overflowing_the_meta_check_is_refused(
        tmp_path: Path, no_big_generator: list[str]) -> None:
    folder = exported(tmp_path, generator={"latent_dim": 1, "width": 1})
    config = json.loads((folder / "config.json").read_text())
    config["generator"]["params"]["width"] = OVERFLOWING_WIDTH
    (folder / "config.json").write_text(json.dumps(config))
    no_big_generator.clear()
    refusal(CheckpointError, lambda: load_any_generator(folder), "config.json",
            "cannot check the size of its generator")
    assert no_big_generator == ["meta"]
    one_line(CliRunner().invoke(app, ["sample", str(folder), "--out", str(tmp_path / "s.png"),
                                      "--device", "cpu"]), "cannot check the size")


def test_network_and_sample_sizes_are_bounded(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ganforge.training import size_bounds

    path = tiny_checkpoint(tmp_path / "step-0000006.safetensors")
    registry = load_plugins().registry
    load_generator(path, registry)  # within the limits
    monkeypatch.setattr(size_bounds, "MAX_NETWORK_ELEMENTS", 100)
    refusal(CheckpointError, lambda: load_generator(path, registry), "generator would hold",
            "over the limit of 100")
    monkeypatch.undo()
    monkeypatch.setattr(size_bounds, "MAX_SAMPLE_ELEMENTS", 1000)
    refusal(CheckpointError, lambda: load_generator(path, registry),
            "one sample of its generator would need", "over the limit of 1000")


def test_a_failing_check_is_a_refusal_never_a_pass() -> None:
    from ganforge.training import size_bounds

    def build() -> Any:
        raise NotImplementedError("no meta kernel for this op")

    refusal(CheckpointError, lambda: size_bounds.built_on_meta(build, "ck.safetensors"),
            "ck.safetensors: cannot check the size", "NotImplementedError: no meta kernel")

    class Stubborn(torch.nn.Module):
        latent_dim = 2

        def sample_latent(self, n: int, generator: Any, device: Any = None) -> torch.Tensor:
            return torch.zeros(n, 2, device=device)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z.sum().item()  # data-dependent: impossible on meta

    refusal(CheckpointError, lambda: size_bounds.check_sample_size(Stubborn(), "g.json"),
            "g.json: cannot check the memory one sample")


# -- 2. npz statistics: exactly the members checked, refused by header -----------------------

def npy(array: np.ndarray | None = None, *, shape: tuple[int, ...] | None = None,
        descr: str = "<f8", data: bytes | None = None) -> bytes:
    """An ``.npy`` file: ``array``'s, or a header announcing ``shape`` followed by
    ``data`` (default: nothing at all)."""
    buffer = io.BytesIO()
    if array is not None:
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + (data or b"")


def archive(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members:
            zf.writestr(name, content)
    return path


@pytest.fixture
def no_array_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading any array's data fails the test (np.load reads through the same function)."""
    def read_array(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an array was read before the headers were checked")

    monkeypatch.setattr(np.lib.format, "read_array", read_array)


GOOD = [("mu.npy", npy(np.zeros(6))), ("sigma.npy", npy(np.eye(6)))]


def test_a_shadowing_sigma_member_is_refused_before_any_read(tmp_path: Path,
                                                             no_array_read: None) -> None:
    # 631 bytes: np.load would read 'sigma' (512 GiB) in place of 'sigma.npy'
    path = archive(tmp_path / "shadow.npz", [*GOOD, ("sigma", npy(shape=(2**18, 2**18)))])
    refusal(UsageError, lambda: load_reference_npz(path), str(path),
            "the member 'sigma' would be read in place of 'sigma.npy'")


def test_a_shadow_that_passes_every_shape_check_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path / "shadow.npz", [*GOOD, ("sigma", npy(2 * np.eye(6)))])
    refusal(UsageError, lambda: load_reference_npz(path), "would be read in place")


@pytest.mark.parametrize(("extra", "says"), [
    ([("extra.npy", npy(np.zeros(2)))], "holds the member 'extra.npy' besides"),
    ([("sigma.npy", npy(2 * np.eye(6)))], "the member 'sigma.npy' is in the archive twice"),
])
def test_extra_members_are_refused(tmp_path: Path, extra: list[tuple[str, bytes]],
                                   says: str) -> None:
    with pytest.warns(UserWarning) if "twice" in says else _nothing():
        path = archive(tmp_path / "extra.npz", [*GOOD, *extra])
    refusal(UsageError, lambda: load_reference_npz(path), says)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_dimension_is_refused_by_its_header(tmp_path: Path, no_array_read: None) -> None:
    # what a 261 KB compressed uint8 file at D = 16,384 announces (the data is not needed)
    path = archive(tmp_path / "big.npz", [("mu.npy", npy(shape=(16384,), descr="|u1")),
                                          ("sigma.npy", npy(shape=(16384, 16384), descr="|u1"))])
    refusal(UsageError, lambda: load_reference_npz(path), "D = 16384 is over the limit")


def test_data_beyond_what_the_header_announces_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path / "long.npz", [GOOD[0], ("sigma.npy", GOOD[1][1] + bytes(64))])
    refusal(UsageError, lambda: load_reference_npz(path), "damaged",
            "'sigma.npy' holds 352 bytes of data, its header announces 288")


# -- 3. --resume never passes over a refused checkpoint ---------------------------------------

def test_resume_stops_at_a_damaged_newest_checkpoint(plugins, tiny_recipe: Path,
                                                     tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe, plugins.registry)
    out = tmp_path / "run"
    train(recipe, plugins, out, progress=False)
    newest = out / "checkpoints" / "step-0000006.safetensors"
    data = newest.read_bytes()
    key = b'\\"rollbacks\\"'  # in the JSON of ganforge.trainer, itself a JSON string
    assert data.count(key) == 1
    newest.write_bytes(data.replace(key, key.replace(b"rollbacks", b"rollbackz")))
    before = files_of(out)
    refusal(CheckpointError, lambda: train(recipe, plugins, out, resume=True, progress=False),
            str(newest), "rollbackz", "never overwritten")
    result = CliRunner().invoke(app, ["run", str(tiny_recipe), "--out", str(out), "--resume"])
    one_line(result, "step-0000006.safetensors", "never overwritten")
    assert "starting at step 0" not in result.output
    assert files_of(out) == before  # nothing written, the damaged file kept as it was


def test_resume_ignores_the_temporary_file_of_an_interrupted_write(plugins, tiny_recipe: Path,
                                                                   tmp_path: Path) -> None:
    from ganforge.training.resume_point import resume_checkpoint

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    partial = folder / ".step-0000003.safetensors.4242.0badc0de.tmp"
    partial.write_bytes(b"half a checkpoint")
    assert resume_checkpoint(folder) is None
    recipe = load_recipe(tiny_recipe, plugins.registry)
    assert train(recipe, plugins, tmp_path / "run", resume=True, progress=False).step == 6
    partial.write_bytes(b"half a checkpoint")
    assert resume_checkpoint(folder) == folder / "step-0000006.safetensors"
    (folder / "step-0000009.safetensors").mkdir()  # named like one, but refused
    refusal(CheckpointError, lambda: resume_checkpoint(folder), "step-0000009.safetensors",
            "a folder, not a regular file")


# -- 5. prepared folders --------------------------------------------------------------------

SOURCE = {"use": "synthetic", "count": 10, "image_size": 16, "channels": 3}


def prepare(plugins, out: Path, source: dict[str, Any] | None = None) -> Any:
    source = source or SOURCE
    dataset = plugins.registry.create("dataset", source["use"],
                                      {k: v for k, v in source.items() if k != "use"})
    return prepare_dataset(dataset, source, out, shard_size=5, workers=0, progress=False)


def open_prepared(plugins, out: Path, in_memory: str = "none") -> Any:
    return plugins.registry.create("dataset", "prepared", {
        "root": str(out), "image_size": 16, "in_memory": in_memory})


def test_prepare_never_writes_over_files_it_did_not_write(plugins, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "manifest.json").write_text('{"my": "notes"}')
    (out / "shard-00000.npy").write_bytes(b"my own array")
    before = files_of(out)
    refusal(UsageError, lambda: prepare(plugins, out), "'manifest.json' but no source.json",
            "nothing was written")
    result = CliRunner().invoke(app, ["data", "prepare", "synthetic", "--out", str(out),
                                      "--set", "count=10", "--set", "image_size=16", "-j", "0"])
    one_line(result, "did not write")
    assert files_of(out) == before
    # a manifest of something else in a folder that is ganforge's own
    ours = tmp_path / "ours"
    prepare(plugins, ours)
    (ours / "manifest.json").write_text('{"format": 1, "source": {"use": "mine"}}')
    refusal(UsageError, lambda: prepare(plugins, ours), "not the manifest of this preparation")


@pytest.mark.parametrize("damage", ["garbage", "flipped"])
def test_a_damaged_shard_is_never_reused(plugins, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "prep"
    prepare(plugins, out)
    shard = out / "shard-00001.npy"
    if damage == "garbage":
        shard.write_bytes(b"garbage" * 10)
    else:
        data = bytearray(shard.read_bytes())
        data[-1] ^= 0xFF
        shard.write_bytes(bytes(data))
    kept = shard.read_bytes()
    message = refusal(DataError, lambda: prepare(plugins, out), str(shard), "is damaged")
    assert "shard-00000" not in message
    assert shard.read_bytes() == kept


def test_opening_a_set_names_the_damaged_shard(plugins, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    prepare(plugins, out)
    shard = out / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-10])  # cut short
    message = refusal(DataError, lambda: open_prepared(plugins, out), str(shard), "damaged")
    assert "shard-00000" not in message
    shard.write_bytes(b"not an array at all")
    refusal(DataError, lambda: open_prepared(plugins, out), str(shard), "damaged")


def test_a_bit_flip_in_a_set_held_in_memory_is_refused(plugins, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    prepare(plugins, out)
    shard = out / "shard-00000.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    open_prepared(plugins, out)  # memory-mapped: header and size are right
    refusal(DataError, lambda: open_prepared(plugins, out, "host"), str(shard), "SHA-256")


def test_folders_prepared_before_the_records_still_work(plugins, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    prepare(plugins, out)
    for path in [out / "manifest.json", *out.glob("shard-*.json")]:
        data = json.loads(path.read_text())
        for record in [data, *data.get("shards", [])]:
            for key in ("bytes", "sha256"):
                record.pop(key, None)
        path.write_text(json.dumps(data))
    assert len(open_prepared(plugins, out, "host")) == 10
    assert prepare(plugins, out).shards_reused == 2


# -- 8. integrity hashes of checkpoint tensors ----------------------------------------------

def grouped_checkpoint(path: Path) -> Path:
    tensors = {"generator/main.weight": torch.randn(8), "discriminator/main.weight":
               torch.randn(4), "optimizer/generator/0/exp_avg": torch.randn(8),
               "rng/torch_cpu": torch.get_rng_state()}
    return write_checkpoint(path, tensors, step=3, recipe_toml="", versions={},
                            optimizers={})


@pytest.mark.parametrize(("tensor", "group"), [
    ("generator/main.weight", "generator"), ("discriminator/main.weight", "discriminator"),
    ("optimizer/generator/0/exp_avg", "optimizer/generator"), ("rng/torch_cpu", "rng"),
])
def test_a_flipped_bit_is_refused_naming_its_group(tmp_path: Path, tensor: str,
                                                   group: str) -> None:
    path = grouped_checkpoint(tmp_path / "step-0000003.safetensors")
    read_checkpoint(path)
    flip_bit(path, tensor)
    refusal(CheckpointError, lambda: read_checkpoint(path), str(path),
            f'integrity check failed: tensor group "{group}"')


def test_checkpoints_without_hashes_still_load(tmp_path: Path) -> None:
    from ganforge.training.checkpoint_integrity import INTEGRITY_KEY

    path = grouped_checkpoint(tmp_path / "step-0000003.safetensors")
    metadata = read_header(path).metadata
    tensors = load_file(path)
    save_file(tensors, path, metadata={k: v for k, v in metadata.items()
                                       if k != INTEGRITY_KEY})
    loaded = read_checkpoint(path)
    assert all(torch.equal(loaded.tensors[k], v) for k, v in tensors.items())
    save_file(tensors, path, metadata={**metadata, INTEGRITY_KEY: '{"sha256": {"x": "y"}}'})
    refusal(CheckpointError, lambda: read_header(path), f"broken ganforge metadata: "
            f"{INTEGRITY_KEY}")


def test_sample_and_resume_refuse_a_flipped_bit(plugins, tiny_recipe: Path,
                                                tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe, plugins.registry)
    out = tmp_path / "run"
    train(recipe, plugins, out, progress=False)
    newest = out / "checkpoints" / "step-0000006.safetensors"
    flip_bit(newest, next(k for k in load_file(newest) if k.startswith("generator/")))
    one_line(CliRunner().invoke(app, ["sample", str(newest), "--out", str(tmp_path / "s.png")]),
             'tensor group "generator"')
    before = files_of(out)
    refusal(CheckpointError, lambda: train(recipe, plugins, out, resume=True, progress=False),
            str(newest), 'integrity check failed: tensor group "generator"')
    assert files_of(out) == before


# -- 12 (part). values a checkpoint or a folder may not hold ---------------------------------

def test_a_negative_running_variance_is_refused(tmp_path: Path) -> None:
    def negative(state: dict[str, torch.Tensor]) -> None:
        key = next(k for k in state if k.endswith("running_var"))
        state[key] = state[key].clone()
        state[key][0] = -1.0

    path = tiny_checkpoint(tmp_path / "step-0000006.safetensors", edit=negative)
    refusal(CheckpointError, lambda: load_generator(path, load_plugins().registry), str(path),
            "running_var: 1 negative value(s) in a running variance")


def test_a_step_past_the_recipe_ceiling_is_refused(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "a.safetensors", step=10**9)
    assert read_header(path).step == 10**9  # run.steps may be as high as this
    for step in (10**9 + 1, 10**18 - 1):  # 18 digits: the most the metadata may spell
        path = tiny_checkpoint(tmp_path / "b.safetensors", step=step)
        refusal(CheckpointError, lambda path=path: read_header(path), str(path),
                f"ganforge.step {step} is above the 1000000000 steps")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_links_out_of_an_exported_folder_are_refused(tmp_path: Path) -> None:
    folder = exported(tmp_path)
    for name in ("model.safetensors", "config.json"):
        outside = tmp_path / f"outside-{name}"
        (folder / name).rename(outside)
        (folder / name).symlink_to(outside)
        refusal(CheckpointError, lambda: load_any_generator(folder), name,
                "a symbolic link to", "outside the folder")
        (folder / name).unlink()
        outside.rename(folder / name)
    (folder / "inner").mkdir()  # a link inside the folder is fine
    (folder / "model.safetensors").rename(folder / "inner" / "model.safetensors")
    (folder / "model.safetensors").symlink_to(Path("inner") / "model.safetensors")
    load_any_generator(folder)
