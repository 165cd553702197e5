"""The FID Inception network: Inception-v3 with the TensorFlow 2015-12-05 weights.

This is the network of pytorch-fid (``mseitzer/pytorch-fid``, ``src/pytorch_fid/inception.py``,
``fid_inception_v3`` + ``InceptionV3``), the PyTorch port of the graph that the original
TensorFlow FID code uses. Its weights are *not* torchvision's ImageNet weights and its
structure differs from torchvision's Inception-v3 in four places, all reproduced here:

* Mixed_5b/5c/5d (``FIDInceptionA``), Mixed_6b-6e (``FIDInceptionC``) and Mixed_7b
  (``FIDInceptionE_1``) average-pool their pooling branch with ``count_include_pad=False``
  (TensorFlow does not count the zero padding);
* Mixed_7c (``FIDInceptionE_2``) max-pools its pooling branch instead of average-pooling;
* the classifier has 1008 outputs (the TensorFlow graph's class count), no auxiliary head.

The parameter names are those of torchvision's ``Inception3`` without ``AuxLogits``, which
are the keys of the released weights file, so it loads with ``strict=True``.

The weights file is the one foreign file ganforge reads. :func:`load_fid_inception` reads it
whole into memory (a regular file of bounded size), checks the bytes' SHA-256 against the
pinned value, and only then gives *those bytes* to ``torch.load(..., weights_only=True)``,
which builds tensors and plain containers and refuses every other global.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from ganforge.core.cache import user_cache_dir
from ganforge.core.errors import CheckpointError, UsageError

__all__ = [
    "FEATURE_DIM",
    "INPUT_SIZE",
    "MAX_WEIGHTS_BYTES",
    "NUM_CLASSES",
    "WEIGHTS_FILE",
    "WEIGHTS_SHA256",
    "WEIGHTS_SIZE",
    "WEIGHTS_URL",
    "FIDInceptionV3",
    "inception_weights_path",
    "load_fid_inception",
]

#: File name of the released weights (pytorch-fid release ``fid_weights``).
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"

#: Where the weights are published.
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
)

#: Full SHA-256 of the weights file. pytorch-fid publishes only its first 8 hex digits (the
#: ``6726825d`` in the name, torch.hub's convention). The full digest is the one pinned for
#: this very URL by other FID code (snap-research/discoscene ``models/inception_model.py``,
#: after genforce) and recorded for a 95,628,359-byte file by several projects (the same
#: digest and size are recorded for torch-fidelity's ``weights-inception-2015-12-05-6726825d
#: .pth``); it agrees with the prefix in the name. A wrong value could only fail closed.
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

#: Size in bytes of the weights file (used to word errors and bound reads; the hash decides).
WEIGHTS_SIZE = 95_628_359

#: Largest file read (or downloaded) as weights: anything bigger is refused before reading.
MAX_WEIGHTS_BYTES = 4 * WEIGHTS_SIZE

#: Side of the square input the network was trained on; inputs are resized to it.
INPUT_SIZE = 299

#: Width of the pool3 features used by FID and KID.
FEATURE_DIM = 2048

#: Number of classifier outputs: the 2015 TensorFlow graph has 1008 (ImageNet has 1000).
NUM_CLASSES = 1008

_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60.0


class FIDInceptionA(InceptionA):
    """InceptionA whose pooling branch ignores the zero padding, as in TensorFlow."""

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(pooled)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(InceptionC):
    """InceptionC whose pooling branch ignores the zero padding, as in TensorFlow."""

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_2(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_3(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_4(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_5(branch7x7dbl)
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(pooled)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class _FIDInceptionE(InceptionE):
    """InceptionE with the pooling branch left to subclasses."""

    def _pool(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )
        branch_pool = self.branch_pool(self._pool(x))
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionE_1(_FIDInceptionE):
    """First InceptionE (Mixed_7b): average pool that ignores the zero padding."""

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionE_2(_FIDInceptionE):
    """Second InceptionE (Mixed_7c): *max* pool, a quirk of the TensorFlow FID graph."""

    def _pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


_BLOCKS = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "maxpool1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "maxpool2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as used for FID, KID and the Inception Score (pytorch-fid's network).

    A freshly built instance has random weights; use :func:`load_fid_inception` to get the
    real ones. The state-dict keys (``Conv2d_1a_3x3.conv.weight`` ... ``fc.bias``, 566 of
    them, 23,850,960 parameters) are those of the released weights file.

    Input: ``(N, 3, H, W)`` RGB images **in [-1, 1]**, the range ganforge images already use.
    (pytorch-fid takes [0, 1] and maps it with ``2 * x - 1`` after resizing; since bilinear
    resizing is affine-equivariant, resizing [-1, 1] input directly is the same computation,
    so that step is dropped here.) Any size is accepted: images are resized to 299 x 299
    with ``F.interpolate(mode="bilinear", align_corners=False)``, exactly as pytorch-fid
    does (no antialiasing).

    Output ``(features, logits)``:

    * ``features``: ``(N, 2048)`` float32, the pool3 activations (adaptive average pool of
      Mixed_7c) -- pytorch-fid's block 3, the FID/KID feature.
    * ``logits``: ``(N, 1008)`` float32, **without the fc bias**: ``features @ fc.weight.T``.
      This is torch-fidelity's ``'logits_unbiased'`` feature, which is its default and
      torchmetrics' default for the Inception Score, and it matches the original
      ``openai/improved-gan`` IS code and StyleGAN's ``no_output_bias=True``: they all apply
      the softmax to the bias-free logits over all 1008 outputs (not the first 1000). The
      biased logits, if ever wanted, are ``self.fc(features)``.
    """

    def __init__(self) -> None:
        super().__init__()
        # pytorch-fid's fid_inception_v3(): torchvision's Inception-v3 without the auxiliary
        # head, 1008 classes, skipping torchvision's (slow, irrelevant) weight init.
        base = torchvision.models.inception_v3(
            weights=None, aux_logits=False, num_classes=NUM_CLASSES, init_weights=False
        )
        base.Mixed_5b = FIDInceptionA(192, pool_features=32)
        base.Mixed_5c = FIDInceptionA(256, pool_features=64)
        base.Mixed_5d = FIDInceptionA(288, pool_features=64)
        base.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        base.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        base.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        base.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        base.Mixed_7b = FIDInceptionE_1(1280)
        base.Mixed_7c = FIDInceptionE_2(2048)
        for name in _BLOCKS:
            self.add_module(name, getattr(base, name))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc: nn.Linear = base.fc

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``(N, 3, H, W)`` images in [-1, 1] to (pool3 features, bias-free logits)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"FIDInceptionV3 expects (N, 3, H, W) RGB images, got {tuple(images.shape)}"
            )
        x = images.to(dtype=self.fc.weight.dtype)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(
                x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
            )
        for name in _BLOCKS:
            x = getattr(self, name)(x)
        features = torch.flatten(self.avgpool(x), 1)
        logits = features @ self.fc.weight.T
        return features.float(), logits.float()


def inception_weights_path(explicit: str | Path | None = None) -> Path:
    """Where the FID Inception weights are (or should be) on disk.

    ``explicit`` (for example ``--inception-weights PATH``) wins; otherwise the file is
    ``user_cache_dir("weights") / WEIGHTS_FILE``, that is under ``$GANFORGE_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/ganforge``, else ``~/.cache/ganforge``. Nothing is created.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    return user_cache_dir("weights") / WEIGHTS_FILE


def load_fid_inception(
    path: str | Path | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` with the released FID weights, in eval mode, frozen.

    Args:
        path: the weights file; default :func:`inception_weights_path` (the user cache).
        download: if the file is missing, fetch it from :data:`WEIGHTS_URL` into ``path``
            (via a temporary file in the same folder, verified, then renamed into place).
        device: where to put the network.

    The file's SHA-256 must equal :data:`WEIGHTS_SHA256` -- every time, downloaded or not --
    and no other weights are ever substituted. The file is read whole into memory first (a
    regular file of at most :data:`MAX_WEIGHTS_BYTES`); the bytes that were hashed are the
    bytes that are parsed, by ``torch.load(..., weights_only=True)``, never the path again.

    Raises:
        UsageError: the file is missing (and ``download`` is off, or the download failed);
            the one-line message says which file to put where.
        CheckpointError: the file's hash is not the expected one, it is too large or not a
            regular file, or it cannot be read as the network's state dict.
    """
    target = inception_weights_path(path)
    data = _read_weights(target)
    if data is None:
        if not download:
            raise UsageError(f"FID Inception weights not found: {_placement_hint(target, path)}")
        _download(target, explicit=path)
        data = _read_weights(target)
        if data is None:
            raise UsageError(f"FID Inception weights not found: {_placement_hint(target, path)}")
    _verify_sha256(hashlib.sha256(data).hexdigest(), str(target), len(data))
    state = _load_state_dict(data, target)
    del data
    model = FIDInceptionV3()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        message = " ".join(str(exc).split())
        raise CheckpointError(
            f"{target}: does not fit the FID Inception network: {message}"
        ) from exc
    model.requires_grad_(False)
    return model.eval().to(device)


def _read_weights(target: Path) -> bytes | None:
    """The whole content of ``target``, or ``None`` if there is no such file.

    Anything but a regular file is refused without blocking (a FIFO would hang the reader:
    the open is non-blocking and the kind is checked on the opened file), and so is a file
    larger than :data:`MAX_WEIGHTS_BYTES`, before it is read, or one that grows meanwhile.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read FID Inception weights {target}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else (
                "a folder" if stat.S_ISDIR(info.st_mode) else "a special file"
            )
            raise CheckpointError(f"{target}: {kind}, not a regular file; refusing to read it")
        if info.st_size > MAX_WEIGHTS_BYTES:
            raise CheckpointError(_too_large(str(target), info.st_size, MAX_WEIGHTS_BYTES))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(info.st_size + 1)
    except OSError as exc:
        raise UsageError(f"cannot read FID Inception weights {target}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > info.st_size:
        raise CheckpointError(f"{target}: grew while it was read; refusing to read it")
    return data


def _too_large(what: str, size: int, limit: int) -> str:
    return (
        f"{what}: {size} bytes, larger than any FID Inception weights file "
        f"({WEIGHTS_SIZE} bytes expected, {limit} at most); refusing to read it"
    )


def _load_state_dict(data: bytes, target: Path) -> dict[str, Tensor]:
    """Parse verified bytes with ``torch.load(weights_only=True)`` into a flat state dict."""
    try:
        result = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, ...)
        raise CheckpointError(
            f"{target}: not loadable as weights (torch.load, weights_only=True): "
            f"{_torch_reason(exc)}"
        ) from exc
    if not isinstance(result, Mapping):
        raise CheckpointError(f"{target}: not a state dict (a {type(result).__name__})")
    for key, value in result.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(
                f"{target}: not a flat state dict of tensors "
                f"(entry {key!r:.60} is a {type(value).__name__})"
            )
    return dict(result)


#: Sentences of advice in torch.load's refusals (re-run with the unsafe loader, or
#: allowlist the global): never the right fix for a file that is not the pinned one.
_TORCH_ADVICE = ("Weights only load failed", "In PyTorch", "Re-running", "Do it only",
                 "Check the documentation", "Please")


def _torch_reason(exc: BaseException, limit: int = 240) -> str:
    """What ``torch.load`` objected to, as one short line without its advice."""
    text = str(exc)
    if "Unpickler error:" in text:  # older torch: "... WeightsUnpickler error: <reason>"
        text = text.split("Unpickler error:", 1)[1].strip().splitlines()[0]
    sentences = re.split(r"(?<=\.)\s+", " ".join(text.split()))
    text = " ".join(s for s in sentences if s and not s.startswith(_TORCH_ADVICE))
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def _placement_hint(target: Path, explicit: str | Path | None) -> str:
    hint = f"put {WEIGHTS_FILE} (from {WEIGHTS_URL}) at {target}"
    if explicit is None:
        hint += ", or pass --inception-weights PATH"
    return hint


def _verify_sha256(actual: str, what: str, size: int) -> None:
    """Refuse anything but the released weights (reads :data:`WEIGHTS_SHA256` at call time)."""
    expected = WEIGHTS_SHA256
    if actual != expected:
        raise CheckpointError(
            f"{what}: SHA-256 mismatch: expected {expected} ({WEIGHTS_SIZE} bytes), "
            f"got {actual} ({size} bytes); refusing to load other weights -- "
            f"replace it with {WEIGHTS_FILE} from {WEIGHTS_URL}"
        )


def _download(target: Path, explicit: str | Path | None) -> None:
    """Fetch the weights into ``target`` atomically; leave nothing behind on failure."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise UsageError(
            f"cannot create {target.parent} for the FID Inception weights ({exc.strerror}): "
            + _placement_hint(target, explicit)
        ) from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(WEIGHTS_URL, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            ):
                while chunk := response.read(_CHUNK):
                    size += len(chunk)
                    if size > MAX_WEIGHTS_BYTES:
                        raise CheckpointError(
                            _too_large(f"download of {WEIGHTS_URL}", size, MAX_WEIGHTS_BYTES)
                        )
                    out.write(chunk)
                    digest.update(chunk)
        except (urllib.error.URLError, HTTPException, OSError, ValueError) as exc:
            reason = " ".join(str(getattr(exc, "reason", exc)).split()) or type(exc).__name__
            raise UsageError(
                f"could not download the FID Inception weights from {WEIGHTS_URL} ({reason}): "
                + _placement_hint(target, explicit)
            ) from exc
        _verify_sha256(digest.hexdigest(), f"download of {WEIGHTS_URL}", size)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
