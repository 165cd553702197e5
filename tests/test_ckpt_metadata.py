"""Crafted checkpoint metadata (issue 11, item 15): the trainer's counters are validated
through the project's cattrs converter, the embedded recipe must be TOML made of tables,
RNG states must be restorable, and every refusal is one CheckpointError line (exit 2)
before any tensor is read or loaded. Also: temporary names unique to each writer."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.errors import CheckpointError
from ganforge.training import checkpoint_format as checkpoint_module
from ganforge.training.checkpoint_format import (
    BestMetric,
    TrainerMeta,
    checkpoint_name,
    latest_checkpoint,
    read_checkpoint,
    read_header,
    read_metadata,
    write_checkpoint,
)
from ganforge.training.rng import capture_rng, restore_rng, rng_state_problems

GOOD_TRAINER = {"batches_seen": 12, "best": {"label": "fid", "value": 31.5, "step": 10},
                "elapsed_s": 2.5, "rollbacks": 1, "threads": 2, "precision": "fp32"}


def craft(path: Path, changes: dict[str, str | None] | None = None,
          tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """A checkpoint with sound metadata, then ``changes`` applied (``None`` removes a key)."""
    metadata = {"ganforge.format": "1", "ganforge.step": "12",
                "ganforge.recipe": "[run]\nsteps = 12\n", "ganforge.versions": "{}",
                "ganforge.optimizers": "{}", "ganforge.trainer": json.dumps(GOOD_TRAINER)}
    for key, value in (changes or {}).items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    save_file(tensors or {"w": torch.zeros(2)}, path, metadata=metadata)
    return path


def refused(path: Path, *pieces: str) -> str:
    """``read_checkpoint`` and ``read_header`` refuse ``path`` with one line (exit 2)
    holding its name and every piece."""
    for read in (read_checkpoint, read_header):
        with pytest.raises(CheckpointError) as info:
            read(path)
        message = str(info.value)
        assert "\n" not in message and "\r" not in message, message
        assert path.name in message and info.value.exit_code == 2, message
        for piece in pieces:
            assert piece in message, message
    return message


def trainer_json(**changes: Any) -> dict[str, str]:
    return {"ganforge.trainer": json.dumps({**GOOD_TRAINER, **changes})}


# -- the trainer's counters -------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "pieces"), [
    (trainer_json(rollbacks="x"), ["ganforge.trainer.rollbacks: expected an integer, got str"]),
    (trainer_json(rollbacks=-5), ["ganforge.trainer.rollbacks: -5 is not in [0, 2**31)"]),
    (trainer_json(rollbacks=2**31), ["rollbacks: 2147483648 is not in [0, 2**31)"]),
    (trainer_json(rollbacks=True), ["rollbacks: expected an integer, got bool True"]),
    (trainer_json(batches_seen=10**30),
     ["ganforge.trainer.batches_seen: 1000000000000000000000000000000 is not in [0, 2**62)"]),
    (trainer_json(best={}), ["ganforge.trainer.best.label: required key is missing",
                             "ganforge.trainer.best.value: required key is missing",
                             "ganforge.trainer.best.step: required key is missing"]),
    (trainer_json(best={"label": "fid", "value": 1.0, "step": -3}),
     ["ganforge.trainer.best.step: -3 is not in [0, 2**62)"]),
    (trainer_json(best={"label": "fid", "value": 1.0, "step": 3, "stpe": 3}),
     ["ganforge.trainer.best.stpe: unknown key"]),
    (trainer_json(best={"label": 5, "value": "low", "step": 3}),
     ["best.label: expected a string", "best.value: expected a number"]),
    (trainer_json(best="fid"), ["ganforge.trainer.best: expected a table, got str 'fid'"]),
    (trainer_json(elapsed_s=-1.0), ["ganforge.trainer.elapsed_s: -1.0 is not a finite number"]),
    (trainer_json(threads=0), ["ganforge.trainer.threads: 0 is not in [1, 2**16)"]),
    (trainer_json(precision="bf16\nerror: forged"), ["ganforge.trainer.precision:"]),
    (trainer_json(bacthes_seen=3), ["ganforge.trainer.bacthes_seen: unknown key, did you mean "
                                    "'batches_seen'?"]),
    ({"ganforge.trainer": '{"elapsed_s": Infinity}'}, ["elapsed_s: inf is not a finite"]),
])
def test_bad_trainer_counters_are_refused(tmp_path: Path, changes: dict[str, str],
                                          pieces: list[str]) -> None:
    refused(craft(tmp_path / "step-0000012.safetensors", changes), "broken ganforge metadata",
            *pieces)


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    path = craft(tmp_path / "c.safetensors", trainer_json(rollbacks=-5, batches_seen="x",
                                                          best={}))
    message = refused(path, "rollbacks", "batches_seen", "best.label")
    assert message.count(";") >= 2


def test_a_hostile_value_keeps_the_line_short(tmp_path: Path) -> None:
    changes = {"ganforge.trainer": json.dumps({f"k{i}": "x" * 10_000 for i in range(50)})}
    message = refused(craft(tmp_path / "c.safetensors", changes), "and 45 more")
    assert len(message) < 2000


@pytest.mark.parametrize("trainer", [
    GOOD_TRAINER,
    {"batches_seen": 12, "best": None, "elapsed_s": 0.5},                    # before rollbacks
    {"batches_seen": 12, "best": None, "elapsed_s": 0.5, "rollbacks": 0},    # before threads
    {"batches_seen": 12, "best": None},
    {"batches_seen": 12},
    {},
    {**GOOD_TRAINER, "best": {"label": "fid", "value": float("nan"), "step": 3}},  # old NaN best
])
def test_every_key_ganforge_ever_wrote_is_accepted(tmp_path: Path, trainer: dict) -> None:
    path = craft(tmp_path / "c.safetensors", {"ganforge.trainer": json.dumps(trainer)})
    meta = read_checkpoint(path).trainer
    assert isinstance(meta, TrainerMeta)
    assert meta.batches_seen == trainer.get("batches_seen")
    assert meta.elapsed_s == trainer.get("elapsed_s", 0.0)
    assert meta.rollbacks == trainer.get("rollbacks", 0)
    assert meta.threads == trainer.get("threads")
    best = trainer.get("best")
    assert (meta.best is None) == (best is None)
    if best is not None:
        assert (meta.best.label, meta.best.step) == (best["label"], best["step"])


def test_write_accepts_a_dict_or_trainer_meta_and_reads_back(tmp_path: Path) -> None:
    tensors = {"w": torch.ones(2)}
    common = {"step": 3, "recipe_toml": "", "versions": {}, "optimizers": {}}
    from_dict = write_checkpoint(tmp_path / "a.safetensors", tensors, **common,
                                 trainer=GOOD_TRAINER)
    meta = TrainerMeta(batches_seen=12, elapsed_s=2.5, rollbacks=1,
                       best=BestMetric("fid", 31.5, 10), threads=2, precision="fp32")
    from_meta = write_checkpoint(tmp_path / "b.safetensors", tensors, **common, trainer=meta)
    assert read_checkpoint(from_dict).trainer == meta == read_checkpoint(from_meta).trainer
    assert json.loads(read_metadata(from_meta)["ganforge.trainer"]) == GOOD_TRAINER
    assert read_checkpoint(write_checkpoint(tmp_path / "c.safetensors", tensors, **common)
                           ).trainer == TrainerMeta()


def test_write_refuses_counters_no_reader_would_accept(tmp_path: Path) -> None:
    path = tmp_path / checkpoint_name(1)
    with pytest.raises(ValueError, match=r"ganforge.trainer.rollbacks: -1 is not in"):
        write_checkpoint(path, {"w": torch.ones(1)}, step=1, recipe_toml="", versions={},
                         optimizers={}, trainer={**GOOD_TRAINER, "rollbacks": -1})
    assert list(tmp_path.iterdir()) == []


def test_metadata_is_refused_before_the_tensors_are_read(tmp_path: Path, monkeypatch) -> None:
    def never(*args, **kwargs):
        raise AssertionError("tensor data read before the metadata was checked")

    monkeypatch.setattr(checkpoint_module, "load_bytes", never)
    for i, changes in enumerate([trainer_json(rollbacks=-5), trainer_json(best={}),
                                 {"ganforge.recipe": "run = 5\n"},
                                 {"ganforge.recipe": "[run"}]):
        refused(craft(tmp_path / f"c{i}.safetensors", changes))


# -- the embedded recipe ----------------------------------------------------------------------

@pytest.mark.parametrize(("recipe", "piece"), [
    ("[run", "ganforge.recipe is not valid TOML"),
    ("this is not toml at all", "ganforge.recipe is not valid TOML"),
    ("run = 5\n", "ganforge.recipe: $.run is 5 (an integer), not a table"),
    ("extends = 'base.toml'\n[run]\n", "$.extends is \"base.toml\" (a string), not a table"),
    ('"a\\nb" = [1]\n', 'ganforge.recipe: $."a\\nb" is [1] (a list), not a table'),
    ("x = " + "[" * 5000 + "]" * 5000, "ganforge.recipe is not valid TOML"),
    ("x = " + "9" * 5000, "ganforge.recipe is not valid TOML"),
])
def test_bad_embedded_recipe_is_refused(tmp_path: Path, recipe: str, piece: str) -> None:
    refused(craft(tmp_path / "c.safetensors", {"ganforge.recipe": recipe}), piece)


def test_embedded_recipe_is_parsed_for_the_reader(tmp_path: Path) -> None:
    path = craft(tmp_path / "c.safetensors",
                 {"ganforge.recipe": "[run]\nsteps = 12\n[generator]\nuse = 'dcgan'\n"})
    expected = {"run": {"steps": 12}, "generator": {"use": "dcgan"}}
    assert read_checkpoint(path).recipe_table == expected
    assert read_header(path).recipe_table == expected


def test_bad_metadata_through_the_cli_is_one_line_exit_2(tmp_path: Path) -> None:
    for i, changes in enumerate([{"ganforge.recipe": "run = 5\n"},
                                 {"ganforge.recipe": "not toml"},
                                 trainer_json(rollbacks="x"), trainer_json(best={})]):
        path = craft(tmp_path / f"c{i}.safetensors", changes)
        result = CliRunner().invoke(app, ["sample", str(path), "--out",
                                          str(tmp_path / "s.png")])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, result.output
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "internal error" not in result.output and not (tmp_path / "s.png").exists()


# -- RNG states -------------------------------------------------------------------------------

def rng_states() -> dict[str, torch.Tensor]:
    return capture_rng(torch.Generator().manual_seed(3))


@pytest.mark.parametrize(("change", "piece"), [
    (lambda s: s.__setitem__("rng/torch_cpu", s["rng/torch_cpu"].float()),
     "rng/torch_cpu: torch.float32 of shape [5056], a 1-D torch.uint8 tensor expected"),
    (lambda s: s.__setitem__("rng/latent", s["rng/latent"].reshape(2, -1)),
     "rng/latent: torch.uint8 of shape [2, 2528], a 1-D torch.uint8 tensor expected"),
    (lambda s: s.__setitem__("rng/latent", s["rng/latent"][:100].clone()),
     "rng/latent: Expected a CPUGeneratorImplState of size 5056"),
    (lambda s: s.__setitem__("rng/torch_cpu", torch.zeros(5056, dtype=torch.uint8)),
     "rng/torch_cpu: Invalid mt19937 state"),
    (lambda s: s.__setitem__("rng/cuda/0", torch.zeros(3, dtype=torch.uint8)),
     "rng/cuda/0: 3 bytes, a CUDA generator state has 16"),
    (lambda s: s.__setitem__("rng/other", torch.zeros(3, dtype=torch.uint8)),
     "rng/other: not an RNG state ganforge writes"),
])
def test_bad_rng_state_is_refused_on_read(tmp_path: Path, change, piece: str) -> None:
    states = rng_states()
    change(states)
    path = craft(tmp_path / "c.safetensors", tensors={"w": torch.zeros(2), **states})
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "broken RNG state" in message and piece in message and "\n" not in message


def test_sound_rng_states_read_back(tmp_path: Path) -> None:
    states = {**rng_states(), "rng/cuda/0": torch.zeros(16, dtype=torch.uint8)}
    path = craft(tmp_path / "c.safetensors", tensors={"w": torch.zeros(2), **states})
    contents = read_checkpoint(path)
    assert all(torch.equal(contents.tensors[k], v) for k, v in states.items())
    assert rng_state_problems(contents.tensors, required=True) == []


def test_restore_rng_changes_nothing_when_any_state_is_bad() -> None:
    states = rng_states()
    states["rng/latent"] = states["rng/latent"].float()
    latent = torch.Generator().manual_seed(7)
    before_global, before_latent = torch.get_rng_state(), latent.get_state()
    with pytest.raises(ValueError, match="rng/latent: torch.float32"):
        restore_rng(states, latent)
    assert torch.equal(torch.get_rng_state(), before_global)
    assert torch.equal(latent.get_state(), before_latent)
    with pytest.raises(ValueError, match="rng/torch_cpu: missing"):
        restore_rng({"rng/latent": latent.get_state()}, latent)


def test_restore_rng_round_trips() -> None:
    latent = torch.Generator().manual_seed(5)
    states = capture_rng(latent)
    expected = (torch.rand(3), torch.rand(3, generator=latent))
    torch.manual_seed(99)
    latent.manual_seed(99)
    restore_rng(states, latent)
    assert torch.equal(torch.rand(3), expected[0])
    assert torch.equal(torch.rand(3, generator=latent), expected[1])


# -- temporary files unique to each writer ----------------------------------------------------

def test_temporary_name_is_unique_per_writer(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    replace = os.replace

    def record(src, dst):
        seen.append(Path(src).name)
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", record)
    path = tmp_path / checkpoint_name(5)
    for _ in range(2):
        write_checkpoint(path, {"w": torch.ones(1)}, step=5, recipe_toml="", versions={},
                         optimizers={})
    assert len(set(seen)) == 2
    for name in seen:
        assert re.fullmatch(rf"\.step-0000005\.safetensors\.{os.getpid()}\.[0-9a-f]+\.tmp",
                            name), name
        assert fnmatch.fnmatch(name, ".*.safetensors.*.tmp")


def test_two_writers_never_touch_each_others_temporary(tmp_path: Path, monkeypatch) -> None:
    """Writer B runs completely while writer A sits between its fsync and its rename (as
    a second process would): with one shared temporary name, B truncated and renamed A's
    file and A failed; with names unique per writer both succeed, A's rename last."""
    path = tmp_path / checkpoint_name(5)
    fsync = os.fsync
    calls = []

    def fsync_then_other_writer(fd: int) -> None:
        fsync(fd)
        if not calls:
            calls.append(fd)
            write_checkpoint(path, {"w": torch.full((1,), 2.0)}, step=5, recipe_toml="",
                             versions={}, optimizers={})

    monkeypatch.setattr(os, "fsync", fsync_then_other_writer)
    write_checkpoint(path, {"w": torch.full((1,), 1.0)}, step=5, recipe_toml="",
                     versions={}, optimizers={})
    assert read_checkpoint(path).tensors["w"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert latest_checkpoint(tmp_path) == path
