"""The FID Inception network and how its weights file is read (no network, no real weights).

Fixture weights are written with ``torch.save`` (that is how the real file was made); hostile
files are crafted with the standard pickler. The loader reads a file into memory, checks its
SHA-256 against the pinned value, and only then parses those bytes with
``torch.load(..., weights_only=True)``; the tests pin a fixture's hash with ``monkeypatch``
where they need the parser to be reached. Nothing here unpickles a hostile file.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import pickle
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
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
    MAX_WEIGHTS_BYTES,
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


class _Reducer:
    """Pickles as a call of ``func(*args)``: the classic code-execution gadget."""

    def __init__(self, func: Any, args: tuple[object, ...]) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (self.func, self.args)


def _torch_saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message, message
    assert str(path) in message, message


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
    # Same weights, same arithmetic: features and logits (so every score) are bit-identical.
    images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        for ours, reference in zip(model(images), net(images), strict=True):
            assert torch.equal(ours, reference)


def test_the_hashed_bytes_are_the_parsed_bytes(
    fake_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.load gets an in-memory copy of the verified bytes, never the path."""
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _sha256(fake_weights))
    real_load = torch.load
    calls: list[tuple[object, dict[str, object]]] = []

    def spy(source: object, **kwargs: Any) -> Any:
        calls.append((source, kwargs))
        return real_load(source, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_fid_inception(fake_weights)
    [(source, kwargs)] = calls
    assert isinstance(source, io.BytesIO)
    assert hashlib.sha256(source.getvalue()).hexdigest() == inception.WEIGHTS_SHA256
    assert kwargs == {"weights_only": True, "map_location": "cpu"}


def test_hash_mismatch_is_refused(fake_weights: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_fid_inception(fake_weights)
    message = str(info.value)
    assert WEIGHTS_SHA256 in message and _sha256(fake_weights) in message
    _one_line_naming(message, fake_weights)


def test_truncated_file_is_refused(
    fake_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncated = tmp_path / WEIGHTS_FILE
    truncated.write_bytes(fake_weights.read_bytes()[: 1 << 20])
    with pytest.raises(CheckpointError, match="SHA-256 mismatch") as info:
        load_fid_inception(truncated)
    _one_line_naming(str(info.value), truncated)
    assert f"({1 << 20} bytes)" in str(info.value)

    # Even under a pinned hash that matches, the cut-off archive is refused, not half-loaded.
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _sha256(truncated))
    with pytest.raises(CheckpointError, match="not loadable as weights") as info:
        load_fid_inception(truncated)
    _one_line_naming(str(info.value), truncated)


def test_too_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    huge = tmp_path / WEIGHTS_FILE
    with huge.open("wb") as handle:  # sparse: no disk space, no bytes to read
        handle.truncate(MAX_WEIGHTS_BYTES + 1)
    with pytest.raises(CheckpointError, match="refusing to read it") as info:
        load_fid_inception(huge)
    _one_line_naming(str(info.value), huge)
    assert str(MAX_WEIGHTS_BYTES + 1) in str(info.value)
    assert "SHA-256" not in str(info.value)  # refused on its size alone


def test_a_fifo_or_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open or read would hang forever
    with pytest.raises(CheckpointError, match="a FIFO, not a regular file") as info:
        load_fid_inception(fifo)
    _one_line_naming(str(info.value), fifo)

    folder = tmp_path / "folder.pth"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="a folder, not a regular file") as info:
        load_fid_inception(folder, download=True)  # present, so nothing is downloaded
    _one_line_naming(str(info.value), folder)


def _gadget(kind: str, marker: Path) -> _Reducer:
    """A callable and arguments that, if ever called, create ``marker``."""
    code = f"open({str(marker)!r}, 'w').write('hacked')"
    if kind == "system":
        return _Reducer(os.system, (f"echo hacked > '{marker}'",))
    return _Reducer({"eval": builtins.eval, "exec": builtins.exec}[kind], (code,))


_CONTAINERS: dict[str, Callable[[_Reducer], bytes]] = {
    "torch.save": lambda gadget: _torch_saved({"fc.weight": torch.ones(2), "x": gadget}),
    "pickle-0": lambda gadget: pickle.dumps({"x": gadget}, protocol=0),
    "pickle-2": lambda gadget: pickle.dumps({"x": gadget}, protocol=2),
    "pickle-4": lambda gadget: pickle.dumps({"x": gadget}, protocol=4),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")
@pytest.mark.parametrize("container", list(_CONTAINERS))
@pytest.mark.parametrize("kind", ["system", "eval", "exec"])
def test_malicious_reduce_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, container: str
) -> None:
    marker = tmp_path / "hacked.txt"
    gadget = _gadget(kind, marker)
    gadget.func(*gadget.args)  # the control: called, the gadget does leave its mark
    assert marker.read_text().strip() == "hacked"
    marker.unlink()
    path = tmp_path / "evil.pth"
    path.write_bytes(_CONTAINERS[container](gadget))

    # The hash is checked first: the file is refused before anything parses it.
    with pytest.raises(CheckpointError, match="SHA-256 mismatch") as info:
        load_fid_inception(path)
    _one_line_naming(str(info.value), path)
    assert not marker.exists()

    # Even if its hash were the pinned one, weights_only=True refuses the gadget unrun.
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _sha256(path))
    with pytest.raises(CheckpointError, match=r"weights_only=True\): UnpicklingError") as info:
        load_fid_inception(path)
    message = str(info.value)
    _one_line_naming(message, path)
    if container in ("torch.save", "pickle-2"):  # protocols 0 and 4: refused at an opcode
        assert f"GLOBAL {'posix.system' if kind == 'system' else kind}" in message
    assert "weights_only=False" not in message and "safe_globals" not in message
    assert not marker.exists()


def test_files_that_are_not_a_state_dict_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What torch.load(weights_only=True) accepts but is no flat state dict, and what it
    cannot parse at all: each refused in one line naming the file, under a matching hash."""
    cases: dict[str, tuple[bytes, str]] = {
        "nested.pth": (
            _torch_saved({"model": {"w": torch.ones(2)}, "epoch": 3}),
            "not a flat state dict of tensors",
        ),
        "list.pth": (_torch_saved([torch.ones(2)]), r"not a state dict \(a list\)"),
        "notes.pth": (b"definitely not a checkpoint\n", "not loadable as weights"),
        "empty.pth": (b"", "not loadable as weights"),
        "small.pth": (
            _torch_saved(nn.Conv2d(3, 4, 3).state_dict()),
            "does not fit the FID Inception network",
        ),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        monkeypatch.setattr(inception, "WEIGHTS_SHA256", _sha256(path))
        with pytest.raises(CheckpointError, match=expected) as info:
            load_fid_inception(path)
        _one_line_naming(str(info.value), path)

    no_data = _zip(tmp_path / "no_data.pth", {"archive/version": b"3\n"})
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _sha256(no_data))
    with pytest.raises(CheckpointError, match="not loadable as weights") as info:
        load_fid_inception(no_data)
    _one_line_naming(str(info.value), no_data)


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


def test_download_larger_than_any_weights_file_is_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(inception, "MAX_WEIGHTS_BYTES", 3 << 20)
    endless = _EndlessResponse()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: endless)
    with pytest.raises(CheckpointError, match="refusing to read it") as info:
        load_fid_inception(download=True)
    message = str(info.value)
    assert "\n" not in message and WEIGHTS_URL in message
    assert (3 << 20) < endless.served <= (4 << 20)  # stopped within a chunk of the limit
    destination = tmp_path / "cache" / "weights" / WEIGHTS_FILE
    assert list(destination.parent.iterdir()) == []


class _EndlessResponse(io.RawIOBase):
    """A download that never ends: zeros for as long as they are read."""

    def __init__(self) -> None:
        self.served = 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "an unbounded read of an endless stream"
        self.served += size
        return b"\0" * size
