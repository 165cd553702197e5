"""Hostile and broken checkpoints: each is crafted byte by byte and must be refused with
one clear line naming the file and the reason, and nothing may be loaded."""

from __future__ import annotations

import copy
import json
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ganforge.errors import CheckpointError
from ganforge.training.checkpoint_checks import load_module_state, validate_optimizer_state
from ganforge.training.checkpoint_format import (
    MAX_HEADER_BYTES,
    optimizer_from_flat,
    optimizer_to_flat,
    read_checkpoint,
    read_metadata,
    write_checkpoint,
)

META = {"ganforge.format": "1", "ganforge.step": "1", "ganforge.recipe": ""}


def f32(shape: list[int], begin: int, end: int, dtype: str = "F32") -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def craft(path: Path, header: dict[str, Any] | list[Any] | bytes, data: bytes = b"",
          length: int | None = None) -> Path:
    """``<Q header length> + header + data``, exactly as given (no checks, no padding)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def refused(path: Path, *pieces: str) -> str:
    """Assert ``read_checkpoint`` refuses ``path`` with one line holding its name and
    every piece; returns the message."""
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert path.name in message, message
    for piece in pieces:
        assert piece in message, message
    assert info.value.exit_code == 2
    return message


# -- the safetensors header -----------------------------------------------------------------

HEADER_CASES = [
    ("overlap", {"__metadata__": META, "a": f32([2], 0, 8), "b": f32([2], 4, 12)},
     bytes(12), ["not a valid safetensors checkpoint", "invalid offset for tensor `b`"]),
    ("gap", {"__metadata__": META, "a": f32([2], 0, 8), "b": f32([2], 12, 20)},
     bytes(20), ["not a valid safetensors checkpoint", "invalid offset for tensor `b`"]),
    ("gap-at-start", {"__metadata__": META, "a": f32([2], 4, 12)},
     bytes(12), ["not a valid safetensors checkpoint", "invalid offset for tensor `a`"]),
    ("short-offsets", {"__metadata__": META, "a": f32([4], 0, 8)},
     bytes(8), ["not a valid safetensors checkpoint",
                "invalid shape, data type, or offset for tensor"]),
    ("long-offsets", {"__metadata__": META, "a": f32([1], 0, 8)},
     bytes(8), ["not a valid safetensors checkpoint", "invalid shape, data type, or offset"]),
    ("past-end", {"__metadata__": META, "a": f32([2], 0, 8), "b": f32([4], 8, 24)},
     bytes(16), ["not a valid safetensors checkpoint", "file not fully covered"]),
    ("trailing-garbage", {"__metadata__": META, "a": f32([2], 0, 8)},
     bytes(12), ["not a valid safetensors checkpoint", "file not fully covered"]),
    ("no-tensors-but-data", {"__metadata__": META}, bytes(3),
     ["not a valid safetensors checkpoint", "file not fully covered"]),
    ("unknown-dtype", {"__metadata__": META, "a": f32([2], 0, 8, dtype="F128")},
     bytes(8), ['tensor "a": unknown dtype "F128"']),
    ("dtype-not-string", {"__metadata__": META, "a": f32([2], 0, 8, dtype=4)},
     bytes(8), ["unknown dtype 4"]),
    ("negative-shape", {"__metadata__": META, "a": f32([2, -1], 0, 8)},
     bytes(8), ["not a valid safetensors checkpoint", "integer `-1`, expected usize"]),
    ("float-shape", {"__metadata__": META, "a": f32([2.0], 0, 8)},
     bytes(8), ["not a valid safetensors checkpoint", "floating point `2.0`, expected usize"]),
    ("bool-shape", {"__metadata__": META, "a": f32([True], 0, 4)},
     bytes(4), ["not a valid safetensors checkpoint", "boolean `true`, expected usize"]),
    ("begin-after-end", {"__metadata__": META, "a": f32([2], 8, 0)},
     bytes(8), ["not a valid safetensors checkpoint", "invalid offset for tensor `a`"]),
    ("negative-offset", {"__metadata__": META, "a": f32([2], -8, 0)},
     bytes(8), ["not a valid safetensors checkpoint", "integer `-8`, expected usize"]),
    ("three-offsets", {"__metadata__": META, "a": {"dtype": "F32", "shape": [2],
                                                   "data_offsets": [0, 4, 8]}},
     bytes(8), ["not a valid safetensors checkpoint", "invalid length 3, expected 2 elements"]),
    ("missing-field", {"__metadata__": META, "a": {"dtype": "F32", "shape": [2]}},
     bytes(8), ['tensor "a": entry has fields ["dtype", "shape"]']),
    ("entry-not-object", {"__metadata__": META, "a": [1, 2]}, b"",
     ['tensor "a": entry is not a JSON object']),
    ("header-is-list", [{"a": 1}], b"", ["safetensors header is not a JSON object (a list)"]),
    ("header-is-string", b'"just a string"', b"", ["not a JSON object (a string)"]),
    ("not-json", b"{not json at all}", b"", ["safetensors header is not valid JSON"]),
    ("nan-in-header", b'{"__metadata__": {"x": NaN}}', b"",
     ['__metadata__ must map strings to strings; "x" is NaN']),
    ("not-utf8", b'{"\xff\xfe": 1}', b"", ["safetensors header is not valid UTF-8 (byte 2"]),
    ("metadata-not-string", {"__metadata__": {**META, "ganforge.step": 1}}, b"",
     ['__metadata__ must map strings to strings; "ganforge.step" is 1 (an integer)']),
    ("metadata-not-object", {"__metadata__": ["ganforge.format"]}, b"",
     ["__metadata__ is not a JSON object (a list)"]),
    ("duplicate-tensor", b'{"__metadata__": ' + json.dumps(META).encode()
     + b', "a": ' + json.dumps(f32([2], 0, 8)).encode()
     + b', "a": ' + json.dumps(f32([2], 8, 16)).encode() + b"}",
     bytes(16), ['safetensors header has the key "a" twice']),
    ("duplicate-metadata", b'{"__metadata__": {"ganforge.format": "1", "ganforge.step": "1", '
     b'"ganforge.recipe": "", "ganforge.step": "9"}}', b"",
     ['has the key "ganforge.step" twice']),
    ("huge-empty-shape", {"__metadata__": META, "a": f32([2**63, 0], 0, 0)}, b"",
     ["has a dimension past 2**63"]),
    ("newline-in-name", {"__metadata__": META, "a\nb": f32([2], 0, 8, dtype="X")},
     bytes(8), ['tensor "a\\nb": unknown dtype "X"']),
]


@pytest.mark.parametrize(("header", "data", "pieces"), [c[1:] for c in HEADER_CASES],
                         ids=[c[0] for c in HEADER_CASES])
def test_hostile_header_is_refused(tmp_path: Path, header: Any, data: bytes,
                                   pieces: list[str]) -> None:
    path = craft(tmp_path / "hostile.safetensors", header, data)
    refused(path, *pieces)
    with pytest.raises(CheckpointError, match="hostile.safetensors"):
        read_metadata(path)  # the header check runs without reading tensors too


@pytest.mark.parametrize(("content", "piece"), [
    (b"", "0 bytes, too short for the 8-byte header length"),
    (b"\x01\x02\x03", "3 bytes, too short"),
    (struct.pack("<Q", 0) + b"{}", "header length 0 is too short for a JSON object"),
    (struct.pack("<Q", 1) + b"{}", "header length 1 is too short"),
    (struct.pack("<Q", 7) + b"{}", "header length 7 runs past the end of the file (10 bytes)"),
    (struct.pack("<Q", 2**64 - 1) + b"{}",
     f"header length {2**64 - 1} is over the {MAX_HEADER_BYTES}-byte limit"),
    (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "over the 104857600-byte limit"),
    (struct.pack("<Q", 200 * 1024 * 1024) + b"{}", "over the 104857600-byte limit"),
    (pickle.dumps({"generator/w": [1.0, 2.0, 3.0]}, protocol=4), "it is a pickle file"),
    (pickle.dumps({"w": list(range(100))}, protocol=2), "it is a pickle file"),
    (b"PK\x03\x04" + bytes(60), "it is a zip archive (torch.save?)"),
])
def test_bad_length_field_is_refused(tmp_path: Path, content: bytes, piece: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    refused(path, "not a safetensors checkpoint", piece)


def test_header_length_seven_with_room_is_parsed_then_refused(tmp_path: Path) -> None:
    path = craft(tmp_path / "seven.safetensors", b"{}     ")  # valid JSON, 7 bytes, no format
    refused(path, "not a ganforge checkpoint (format null)")


def test_pickle_is_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("pickle.loads called")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(torch, "load", boom)
    path = tmp_path / "step-0000001.safetensors"
    path.write_bytes(pickle.dumps({"generator/0.weight": torch.zeros(2).tolist()}))
    refused(path, "pickle")


def test_file_name_with_newline_stays_one_line(tmp_path: Path) -> None:
    path = craft(tmp_path / "odd\nname.safetensors", [1])
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value) and "odd\\nname.safetensors" in str(info.value)


# -- the ganforge metadata --------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "piece"), [
    ({"ganforge.step": "-1"}, 'ganforge.step "-1" is not a non-negative integer'),
    ({"ganforge.step": "1.5"}, 'ganforge.step "1.5" is not a non-negative integer'),
    ({"ganforge.step": " 7"}, "is not a non-negative integer"),
    ({"ganforge.step": "7_000"}, "is not a non-negative integer"),
    ({"ganforge.step": "\u0667"}, "is not a non-negative integer"),  # an Arabic-Indic 7
    ({"ganforge.step": "9" * 5000}, "is not a non-negative integer"),
    ({"ganforge.step": None}, "no ganforge.step"),
    ({"ganforge.recipe": None}, "no ganforge.recipe"),
    ({"ganforge.versions": "[1, 2]"}, "ganforge.versions is not a JSON object (a list)"),
    ({"ganforge.versions": '{"torch": 2}'}, 'ganforge.versions["torch"] is 2, not a string'),
    ({"ganforge.versions": "{"}, "ganforge.versions is not valid JSON"),
    ({"ganforge.versions": '{"a": "1", "a": "2"}'}, 'ganforge.versions has the key "a" twice'),
    ({"ganforge.optimizers": '"adam"'}, "ganforge.optimizers is not a JSON object (a string)"),
    ({"ganforge.optimizers": '{"generator": []}'},
     'ganforge.optimizers["generator"] is not a JSON object'),
    ({"ganforge.optimizers": '{"generator": {"scalars": {}}}'},
     'ganforge.optimizers["generator"].param_groups is not a list of JSON objects'),
    ({"ganforge.optimizers": '{"generator": {"param_groups": [{"params": ["x"]}]}}'},
     "param_groups[0].params is not a list of non-negative integers"),
    ({"ganforge.optimizers": '{"generator": {"param_groups": [], "scalars": {"x": {}}}}'},
     'ganforge.optimizers["generator"].scalars is not a JSON object mapping'),
    ({"ganforge.trainer": "3"}, "ganforge.trainer is not a JSON object (an integer)"),
    ({"ganforge.trainer": '{"batches_seen": -2}'},
     "ganforge.trainer.batches_seen: -2 is not in [0, 2**62)"),
    ({"ganforge.trainer": '{"batches_seen": 2.5}'},
     "ganforge.trainer.batches_seen: expected an integer, got float 2.5"),
    ({"ganforge.trainer": '{"elapsed_s": "long"}'},
     "ganforge.trainer.elapsed_s: expected a number, got str 'long'"),
    ({"ganforge.trainer": '{"best": [1]}'},
     "ganforge.trainer.best: expected a table, got list [1]"),
    ({"ganforge.format": "2"}, 'not a ganforge checkpoint (format "2")'),
])
def test_broken_metadata_is_refused(tmp_path: Path, changes: dict[str, str | None],
                                    piece: str) -> None:
    metadata = {**META, "ganforge.versions": "{}", "ganforge.optimizers": "{}",
                "ganforge.trainer": "{}"}
    metadata.update({k: v for k, v in changes.items() if v is not None})
    for key in (k for k, v in changes.items() if v is None):
        del metadata[key]
    path = tmp_path / "meta.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata=metadata)
    refused(path, piece)


# -- a sound checkpoint still loads ---------------------------------------------------------

def small_generator(width: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.BatchNorm1d(width), nn.Linear(width, 4))


def stepped_adam(module: nn.Module, groups: int = 1) -> torch.optim.Adam:
    params = list(module.parameters())
    if groups == 1:
        opt = torch.optim.Adam(params, lr=1e-3)
    else:
        opt = torch.optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 1e-4}],
                               lr=1e-3)
    module(torch.randn(5, 3)).square().mean().backward()
    opt.step()
    return opt


def save_run(path: Path, module: nn.Module, opt: torch.optim.Optimizer,
             overrides: dict[str, torch.Tensor | None] | None = None) -> Path:
    tensors = {f"generator/{k}": v for k, v in module.state_dict().items()}
    flat, rest = optimizer_to_flat("optimizer/generator", opt)
    tensors.update(flat)
    for key, value in (overrides or {}).items():
        if value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    return write_checkpoint(path, tensors, step=12, recipe_toml="[run]\nsteps = 12\n",
                            versions={"torch": torch.__version__},
                            optimizers={"generator": rest},
                            trainer={"batches_seen": 12, "best": None, "elapsed_s": 0.5})


def snapshot(module: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().cpu().numpy().tobytes() for k, v in module.state_dict().items()}


def test_sound_checkpoint_round_trips(tmp_path: Path) -> None:
    source = small_generator()
    opt = stepped_adam(source)
    path = save_run(tmp_path / "step-0000012.safetensors", source, opt)
    assert read_metadata(path)["ganforge.step"] == "12"
    contents = read_checkpoint(path)
    assert contents.step == 12 and contents.trainer.batches_seen == 12
    assert contents.versions == {"torch": torch.__version__}

    target = small_generator(8)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(1.0)
    load_module_state(target, contents.section("generator"), "generator", path)
    assert snapshot(target) == snapshot(source)

    fresh = torch.optim.Adam(target.parameters(), lr=1e-3)
    state = optimizer_from_flat(contents.section("optimizer/generator"),
                                contents.optimizers["generator"])
    validate_optimizer_state(fresh, state, "generator", path)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"],
                       opt.state_dict()["state"][0]["exp_avg"])


def test_empty_tensors_and_padding_are_fine(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": META, "e": f32([0, 3], 0, 0),
                         "a": f32([2], 0, 8), "z": f32([0], 8, 8)}).encode() + b"   "
    path = craft(tmp_path / "ok.safetensors", header, struct.pack("<2f", 1.5, -2.0))
    contents = read_checkpoint(path)
    assert contents.tensors["a"].tolist() == [1.5, -2.0]
    assert contents.tensors["e"].shape == (0, 3)


# -- tensors that do not fit the model --------------------------------------------------------

def test_wrong_generator_tensors_are_named_and_nothing_loads(tmp_path: Path) -> None:
    source = small_generator()
    path = save_run(tmp_path / "step-0000012.safetensors", source, stepped_adam(source), {
        "generator/0.weight": torch.zeros(4, 3),                     # wrong shape
        "generator/0.bias": torch.zeros(8, dtype=torch.float64),     # wrong dtype
        "generator/2.bias": torch.tensor([0.0, float("nan"), 1.0, 0.0]),
        "generator/1.running_var": torch.full((8,), float("inf")),
        "generator/2.weight": None,                                  # missing
        "generator/3.weight": torch.zeros(2),                        # extra
    })
    contents = read_checkpoint(path)  # the file itself is sound
    target = small_generator()
    with torch.no_grad():
        for p in target.parameters():
            p.mul_(3.0)
    before = snapshot(target)
    with pytest.raises(CheckpointError) as info:
        load_module_state(target, contents.section("generator"), "generator", path)
    message = str(info.value)
    assert "\n" not in message and path.name in message
    for piece in ("generator does not match", "missing 2.weight", "unexpected 3.weight",
                  "0.weight: shape [4, 3] in checkpoint, [8, 3] in model",
                  "0.bias: dtype torch.float64 in checkpoint, torch.float32 in model",
                  "2.bias: non-finite values", "1.running_var: non-finite values"):
        assert piece in message, message
    assert snapshot(target) == before  # bit-identical: nothing loaded


def test_checkpoint_of_another_recipe_names_every_shape(tmp_path: Path) -> None:
    wide = small_generator(16)
    path = save_run(tmp_path / "step-0000012.safetensors", wide, stepped_adam(wide))
    narrow = small_generator(8)
    before = snapshot(narrow)
    with pytest.raises(CheckpointError) as info:
        load_module_state(narrow, read_checkpoint(path).section("generator"), "generator", path)
    message = str(info.value)
    for piece in ("0.weight: shape [16, 3] in checkpoint, [8, 3] in model",
                  "0.bias: shape [16] in checkpoint, [8] in model",
                  "1.weight: shape [16]", "1.running_mean: shape [16]",
                  "2.weight: shape [4, 16] in checkpoint, [4, 8] in model"):
        assert piece in message, message
    assert "2.bias" not in message
    assert snapshot(narrow) == before


# -- optimizer state -----------------------------------------------------------------------

def optimizer_fixture(groups: int = 1) -> tuple[nn.Module, torch.optim.Adam, dict[str, Any]]:
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 4))  # params [8,3] [8] [4,8] [4]
    opt = stepped_adam(module, groups)
    flat, rest = optimizer_to_flat("optimizer/generator", opt)
    cut = len("optimizer/generator/")
    state = optimizer_from_flat({k[cut:]: v.clone() for k, v in flat.items()},
                                json.loads(json.dumps(rest)))  # as a checkpoint returns it
    return module, opt, state


def opt_snapshot(opt: torch.optim.Optimizer) -> dict[str, Any]:
    return copy.deepcopy(opt.state_dict())


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index, values in a["state"].items():
        for name, value in values.items():
            assert torch.equal(value, b["state"][index][name])


def refused_state(opt: torch.optim.Optimizer, state: dict[str, Any], *pieces: str) -> str:
    before = opt_snapshot(opt)
    with pytest.raises(CheckpointError) as info:
        validate_optimizer_state(opt, state, "generator", "ck/step-0000012.safetensors")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("ck/step-0000012.safetensors: optimizer generator state")
    for piece in pieces:
        assert piece in message, message
    assert_same(opt_snapshot(opt), before)
    return message


def test_sound_optimizer_state_passes_and_loads() -> None:
    for groups in (1, 2):
        _, opt, state = optimizer_fixture(groups)
        validate_optimizer_state(opt, state, "generator", "ck.safetensors")
        validate_optimizer_state(opt, state, "optimizer/generator", "ck.safetensors")
        opt.load_state_dict(state)


def test_optimizer_wrong_shape_is_named() -> None:
    _, opt, state = optimizer_fixture()
    state["state"][0]["exp_avg"] = torch.zeros(4)
    state["state"][3]["exp_avg_sq"] = torch.zeros(4, 1)
    refused_state(opt, state,
                  "optimizer/generator/0/exp_avg: shape [4] in checkpoint, [8, 3] for the "
                  "parameter",
                  "optimizer/generator/3/exp_avg_sq: shape [4, 1] in checkpoint, [4] for")


def test_optimizer_missing_param_group_is_refused() -> None:
    _, opt, state = optimizer_fixture(groups=2)
    dropped = {**state, "param_groups": state["param_groups"][:1]}
    refused_state(opt, dropped,
                  "optimizer/generator: 1 param groups in checkpoint, 2 in the optimizer")
    short = copy.deepcopy(state)
    short["param_groups"][1]["params"] = short["param_groups"][1]["params"][:1]
    refused_state(opt, short, "optimizer/generator/param_groups/1: 1 params in checkpoint, "
                              "2 in the optimizer")


def test_optimizer_nan_exp_avg_is_refused() -> None:
    _, opt, state = optimizer_fixture()
    state["state"][2]["exp_avg"][1, 1] = float("nan")
    state["state"][1]["exp_avg_sq"][0] = float("inf")
    refused_state(opt, state, "optimizer/generator/2/exp_avg: non-finite values",
                  "optimizer/generator/1/exp_avg_sq: non-finite values")


def test_optimizer_non_float_dtype_is_refused() -> None:
    _, opt, state = optimizer_fixture()
    state["state"][0]["exp_avg_sq"] = torch.zeros(8, 3, dtype=torch.int64)
    refused_state(opt, state, "optimizer/generator/0/exp_avg_sq: dtype torch.int64 in "
                              "checkpoint, a floating dtype expected (the parameter is "
                              "torch.float32)")


@pytest.mark.parametrize(("change", "piece"), [
    (lambda s: s["state"][0].__setitem__("step", torch.ones(3)),
     "optimizer/generator/0/step: shape [3] in checkpoint, a scalar expected"),
    (lambda s: s["state"][0].__setitem__("step", torch.tensor(float("nan"))),
     "optimizer/generator/0/step: nan is not a finite non-negative step"),
    (lambda s: s["state"][0].__setitem__("step", -1), "step: -1 is not a finite"),
    (lambda s: s["state"][0].__setitem__("step", "1"), 'step: "1" is not a number'),
    (lambda s: s["state"].__setitem__(9, {"exp_avg": torch.zeros(1)}),
     "optimizer/generator/9: state for a parameter no param group lists"),
    (lambda s: s["param_groups"][0].__setitem__("params", [0, 0, 1, 2]),
     "param_groups/0: parameter index 0 is not a unique integer"),
    (lambda s: s["param_groups"][0].__setitem__("lr", float("nan")),
     "optimizer/generator/param_groups/0/lr: non-finite value NaN"),
    (lambda s: s["param_groups"][0].__setitem__("betas", [0.9, float("inf")]),
     "param_groups/0/betas: non-finite value"),
    (lambda s: s.pop("param_groups"), "not a state dict with param_groups and state"),
])
def test_optimizer_other_problems(change, piece: str) -> None:
    _, opt, state = optimizer_fixture()
    change(state)
    refused_state(opt, state, piece)


def test_optimizer_names_every_problem_at_once() -> None:
    _, opt, state = optimizer_fixture()
    state["state"][0]["exp_avg"] = torch.zeros(4)
    state["state"][1]["exp_avg"] = torch.full((8,), float("nan"))
    state["state"][2]["exp_avg_sq"] = torch.zeros(4, 8, dtype=torch.int32)
    message = refused_state(opt, state, "0/exp_avg: shape", "1/exp_avg: non-finite",
                            "2/exp_avg_sq: dtype torch.int32")
    assert message.count(";") == 2
