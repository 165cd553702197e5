"""The pickle-free ``.pth`` reader and the FID Inception network (no network, no real weights).

Fixture checkpoints are written with ``torch.save`` (that is how the real weights file was
made); hostile ones are crafted with the standard pickler. Nothing here ever unpickles.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import urllib.error
import urllib.request
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from ganforge.errors import CheckpointError, UsageError
from ganforge.evaluation import inception
from ganforge.evaluation.inception import (
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    WEIGHTS_URL,
    FIDInceptionA,
    FIDInceptionC,
    FIDInceptionE_1,
    FIDInceptionE_2,
    FIDInceptionV3,
    inception_weights_path,
    load_fid_inception,
)
from ganforge.evaluation.pth_reader import read_pth_state_dict

# pytorch-fid's FID network = torchvision Inception-v3, no aux head, 1008 classes:
#   torchvision inception_v3 (1000 classes, with AuxLogits)      27,161,264
#   - AuxLogits (conv0 98,304+256, conv1 2,457,600+1,536, fc 769,000)  3,326,696
#   + 8 more classes in fc (8 x 2048 weights + 8 biases)              16,392
FID_INCEPTION_PARAMETERS = 23_850_960
# 94 BasicConv2d x (conv.weight + 5 BatchNorm entries) + fc.weight + fc.bias
FID_INCEPTION_STATE_KEYS = 566


# --------------------------------------------------------------------------- helpers


def _assert_same_state(actual: dict[str, torch.Tensor], expected: dict[str, Any]) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        got = actual[key]
        assert got.dtype == value.dtype, key
        assert got.shape == value.shape, key
        assert torch.equal(got, value), key


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _craft(path: Path, obj: object, storages: dict[str, bytes]) -> Path:
    """A zip checkpoint whose data.pkl pickles ``obj``; ``_StorageRef`` become storages."""

    class _Pickler(pickle.Pickler):
        def persistent_id(self, value: object) -> object:
            if isinstance(value, _StorageRef):
                return ("storage", torch.FloatStorage, value.key, "cpu", value.numel)
            return None

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    members = {"archive/data.pkl": buffer.getvalue(), "archive/byteorder": b"little"}
    members.update({f"archive/data/{key}": data for key, data in storages.items()})
    members["archive/version"] = b"3\n"
    return _zip(path, members)


class _StorageRef:
    def __init__(self, key: str, numel: int) -> None:
        self.key = key
        self.numel = numel


class _Rebuild:
    """Pickles as a call of torch._utils._rebuild_tensor_v2 with chosen arguments."""

    def __init__(self, *args: object) -> None:
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (torch._utils._rebuild_tensor_v2, self.args)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"echo hacked > {self.marker}",))


# --------------------------------------------------------------------------- pth_reader


def test_round_trip_conv_batchnorm_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    model(torch.randn(5, 3, 4, 4))  # train mode: running stats and num_batches_tracked move
    state = model.state_dict()
    path = tmp_path / "model.pth"
    torch.save(state, path)

    loaded = read_pth_state_dict(path)

    _assert_same_state(loaded, state)
    assert loaded["1.num_batches_tracked"].dtype == torch.int64
    assert loaded["1.num_batches_tracked"].shape == ()
    assert loaded["1.num_batches_tracked"].item() == 1
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    fresh.load_state_dict(loaded, strict=True)


def test_round_trip_dtypes_views_and_offsets(tmp_path: Path) -> None:
    torch.manual_seed(1)
    base = torch.randn(10, dtype=torch.float16)
    grid = torch.randn(4, 6)
    state = {
        "half": torch.randn(3, 5).half(),
        "half_slice": base[2:8:2],  # offset 2, stride 2 into a shared 10-element storage
        "half_tail": base[7:],  # same storage, another offset
        "row": grid[2],  # offset into a 2-D tensor's storage
        "column": grid[:, 3],  # non-contiguous
        "transposed": grid.t(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "double": torch.randn(3, dtype=torch.float64),
        "int32": torch.arange(-3, 3, dtype=torch.int32),
        "uint8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.empty(0, 3),
        "param": nn.Parameter(torch.randn(2, 2)),
    }
    path = tmp_path / "mixed.pth"
    torch.save(state, path)

    loaded = read_pth_state_dict(path)

    _assert_same_state(loaded, {k: v.detach() for k, v in state.items()})
    assert loaded["transposed"].stride() == grid.t().stride()
    assert type(loaded["param"]) is torch.Tensor
    # Copies: no two results share memory, and nothing aliases the archive.
    pointers = [t.untyped_storage().data_ptr() for t in loaded.values() if t.numel()]
    assert len(set(pointers)) == len(pointers)


def test_file_object_and_big_endian_archive(tmp_path: Path) -> None:
    state = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([-1.5])}
    path = tmp_path / "little.pth"
    torch.save(state, path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name, data in list(members.items()):
        if name.endswith("/byteorder"):
            members[name] = b"big"
        elif "/data/" in name:  # all storages are float32: swap every 4-byte word
            members[name] = b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))
    big = _zip(tmp_path / "big.pth", members)

    _assert_same_state(read_pth_state_dict(big), state)
    with path.open("rb") as handle:
        _assert_same_state(read_pth_state_dict(handle, name="weights"), state)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_hostile_global_is_refused_and_not_executed(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "hacked.txt"
    payload = pickle.dumps(_Evil(marker), protocol=protocol)
    assert b"system" in payload  # the classic os.system gadget really is in there
    path = _zip(tmp_path / "evil.pth", {"evil/data.pkl": payload, "evil/version": b"3\n"})

    with pytest.raises(CheckpointError) as info:
        read_pth_state_dict(path)

    message = str(info.value)
    assert str(path) in message
    assert "system" in message and "global" in message
    assert not marker.exists()


def test_other_globals_and_opcodes_are_refused(tmp_path: Path) -> None:
    cases: dict[str, bytes] = {
        " eval'": pickle.dumps({"x": _Reducer(eval, ("1+1",))}, protocol=2),
        "posixpath join": pickle.dumps({"x": _Reducer(os.path.join, ("a",))}, protocol=2),
        "_get_layout": pickle.dumps(
            {"x": _Reducer(torch.serialization._get_layout, ("torch.strided",))}, protocol=2
        ),
        "BINBYTES": pickle.dumps({"x": b"raw bytes"}, protocol=3),
        "opcode DICT": pickle.dumps({"x": 1}, protocol=0),
        "call of global 'torch FloatStorage'": pickle.dumps(
            {"x": _Reducer(torch.FloatStorage, ())}, protocol=2
        ),
    }
    for expected, payload in cases.items():
        path = _zip(tmp_path / "bad.pth", {"bad/data.pkl": payload})
        with pytest.raises(CheckpointError, match="refused") as info:
            read_pth_state_dict(path)
        assert expected in str(info.value), (expected, str(info.value))


class _Reducer:
    def __init__(self, func: Any, args: tuple[object, ...]) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (self.func, self.args)


def test_crafted_tensor_outside_its_storage_is_refused(tmp_path: Path) -> None:
    four_floats = torch.arange(4, dtype=torch.float32).numpy().tobytes()
    hooks: OrderedDict[str, object] = OrderedDict()
    ok = {"x": _Rebuild(_StorageRef("0", 4), 1, (3,), (1,), False, hooks)}
    assert torch.equal(
        read_pth_state_dict(_craft(tmp_path / "ok.pth", ok, {"0": four_floats}))["x"],
        torch.tensor([1.0, 2.0, 3.0]),
    )
    too_far = {"x": _Rebuild(_StorageRef("0", 4), 0, (2, 3), (3, 1), False, hooks)}
    with pytest.raises(CheckpointError, match="reaches element 5 of a 4-element storage"):
        read_pth_state_dict(_craft(tmp_path / "far.pth", too_far, {"0": four_floats}))
    short = {"x": _Rebuild(_StorageRef("0", 8), 0, (4,), (1,), False, hooks)}
    with pytest.raises(CheckpointError, match="holds 16 bytes"):
        read_pth_state_dict(_craft(tmp_path / "short.pth", short, {"0": four_floats}))
    missing = {"x": _Rebuild(_StorageRef("7", 4), 0, (4,), (1,), False, hooks)}
    with pytest.raises(CheckpointError, match="missing from the archive"):
        read_pth_state_dict(_craft(tmp_path / "missing.pth", missing, {"0": four_floats}))


def test_non_zip_and_zip_without_data_pkl_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("definitely not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch zip checkpoint") as info:
        read_pth_state_dict(text)
    assert str(text) in str(info.value)

    empty = _zip(tmp_path / "empty.pth", {"archive/version": b"3\n", "archive/data/0": b"\0"})
    with pytest.raises(CheckpointError, match="data.pkl") as info:
        read_pth_state_dict(empty)
    assert str(empty) in str(info.value)

    with pytest.raises(CheckpointError):
        read_pth_state_dict(tmp_path / "absent.pth")


def test_nested_or_non_dict_checkpoints_are_refused(tmp_path: Path) -> None:
    nested = tmp_path / "nested.pth"
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3}, nested)
    with pytest.raises(CheckpointError, match="not a flat state dict"):
        read_pth_state_dict(nested)
    as_list = tmp_path / "list.pth"
    torch.save([torch.ones(2)], as_list)
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_pth_state_dict(as_list)


# --------------------------------------------------------------------------- inception


@pytest.fixture(scope="module")
def net() -> FIDInceptionV3:
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


@pytest.fixture(scope="module")
def fake_weights(net: FIDInceptionV3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_network_has_pytorch_fid_keys_and_shapes(net: FIDInceptionV3) -> None:
    state = net.state_dict()
    assert len(state) == FID_INCEPTION_STATE_KEYS
    assert sum(p.numel() for p in net.parameters()) == FID_INCEPTION_PARAMETERS
    # pytorch-fid builds torchvision's inception_v3(num_classes=1008, aux_logits=False) and
    # swaps in subclasses that only change forward(): same names, same shapes.
    reference = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    ).state_dict()
    assert set(state) == set(reference)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in reference.items()}
    assert not any(key.startswith("AuxLogits") for key in state)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["fc.bias"].shape == (1008,)
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        assert isinstance(getattr(net, name), FIDInceptionA)
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        assert isinstance(getattr(net, name), FIDInceptionC)
    assert isinstance(net.Mixed_7b, FIDInceptionE_1)
    assert isinstance(net.Mixed_7c, FIDInceptionE_2)


def test_forward_gives_pool3_features_and_bias_free_logits(net: FIDInceptionV3) -> None:
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        features, logits = net(images)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert logits.shape == (2, 1008) and logits.dtype == torch.float32
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    assert (features >= 0).all()  # average of ReLU outputs
    torch.testing.assert_close(logits, features @ net.fc.weight.T)
    with pytest.raises(ValueError, match="RGB"):
        net(torch.zeros(1, 1, 8, 8))


def _reference_a(block: InceptionA, x: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's FIDInceptionA.forward, spelled out."""
    pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    return torch.cat(
        [
            block.branch1x1(x),
            block.branch5x5_2(block.branch5x5_1(x)),
            block.branch3x3dbl_3(block.branch3x3dbl_2(block.branch3x3dbl_1(x))),
            block.branch_pool(pool),
        ],
        1,
    )


def _reference_c(block: InceptionC, x: torch.Tensor) -> torch.Tensor:
    pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    dbl = x
    for layer in (block.branch7x7dbl_1, block.branch7x7dbl_2, block.branch7x7dbl_3):
        dbl = layer(dbl)
    dbl = block.branch7x7dbl_5(block.branch7x7dbl_4(dbl))
    return torch.cat(
        [
            block.branch1x1(x),
            block.branch7x7_3(block.branch7x7_2(block.branch7x7_1(x))),
            dbl,
            block.branch_pool(pool),
        ],
        1,
    )


def _reference_e(block: InceptionE, x: torch.Tensor, use_max: bool) -> torch.Tensor:
    if use_max:
        pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    else:
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    b3 = block.branch3x3_1(x)
    d = block.branch3x3dbl_2(block.branch3x3dbl_1(x))
    return torch.cat(
        [
            block.branch1x1(x),
            torch.cat([block.branch3x3_2a(b3), block.branch3x3_2b(b3)], 1),
            torch.cat([block.branch3x3dbl_3a(d), block.branch3x3dbl_3b(d)], 1),
            block.branch_pool(pool),
        ],
        1,
    )


def test_fid_blocks_use_tensorflow_pooling() -> None:
    torch.manual_seed(4)
    x = torch.rand(1, 8, 5, 5) + 0.5  # positive, so zero padding visibly changes averages
    blocks: list[tuple[nn.Module, type[nn.Module], Any]] = [
        (FIDInceptionA(8, pool_features=4), InceptionA, _reference_a),
        (FIDInceptionC(8, channels_7x7=4), InceptionC, _reference_c),
        (FIDInceptionE_1(8), InceptionE, lambda b, t: _reference_e(b, t, use_max=False)),
        (FIDInceptionE_2(8), InceptionE, lambda b, t: _reference_e(b, t, use_max=True)),
    ]
    with torch.no_grad():
        for block, parent, reference in blocks:
            block.eval()
            ours = block(x)
            torch.testing.assert_close(ours, reference(block, x))
            torchvision_output = parent.forward(block, x)
            assert not torch.allclose(ours, torchvision_output), type(block).__name__


def test_load_round_trips_fake_weights(
    net: FIDInceptionV3, fake_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _sha256(fake_weights))
    model = load_fid_inception(fake_weights, device="cpu")
    assert isinstance(model, FIDInceptionV3)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    _assert_same_state(model.state_dict(), net.state_dict())


def test_hash_mismatch_is_refused(fake_weights: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_fid_inception(fake_weights)
    message = str(info.value)
    assert WEIGHTS_SHA256 in message and _sha256(fake_weights) in message
    assert "\n" not in message


def test_weights_path_is_cache_aware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))
    assert inception_weights_path() == tmp_path / "cache" / "weights" / WEIGHTS_FILE
    assert inception_weights_path(tmp_path / "w.pth") == tmp_path / "w.pth"
    assert inception_weights_path("~/w.pth") == Path.home() / "w.pth"


def test_missing_weights_error_is_one_helpful_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UsageError) as info:
        load_fid_inception()
    message = str(info.value)
    assert "\n" not in message
    assert WEIGHTS_FILE in message and WEIGHTS_URL in message
    assert str(tmp_path / "cache" / "weights" / WEIGHTS_FILE) in message
    assert "--inception-weights" in message

    explicit = tmp_path / "elsewhere" / "inception.pth"
    with pytest.raises(UsageError, match="not found") as info:
        load_fid_inception(explicit)
    assert str(explicit) in str(info.value) and WEIGHTS_URL in str(info.value)


def test_download_without_network_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))

    def offline(*args: object, **kwargs: object) -> object:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UsageError) as info:
        load_fid_inception(download=True)
    message = str(info.value)
    destination = tmp_path / "cache" / "weights" / WEIGHTS_FILE
    assert "\n" not in message
    assert WEIGHTS_URL in message and str(destination) in message
    assert "name resolution" in message
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []  # no partial file left behind


def test_download_verifies_hash_then_renames_into_place(
    net: FIDInceptionV3,
    fake_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))
    payload = fake_weights.read_bytes()
    requested: list[str] = []

    def serve(url: str, timeout: float | None = None) -> io.BytesIO:
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    destination = tmp_path / "cache" / "weights" / WEIGHTS_FILE

    # The real hash: the fake payload is refused and nothing is left behind.
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_fid_inception(download=True)
    assert list(destination.parent.iterdir()) == []

    monkeypatch.setattr(inception, "WEIGHTS_SHA256", hashlib.sha256(payload).hexdigest())
    model = load_fid_inception(download=True)
    assert requested == [WEIGHTS_URL, WEIGHTS_URL]
    assert destination.read_bytes() == payload
    assert [p.name for p in destination.parent.iterdir()] == [WEIGHTS_FILE]
    _assert_same_state(model.state_dict(), net.state_dict())
