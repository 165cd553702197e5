"""Reference statistics in the ``.npz`` files pytorch-fid and clean-fid read and write.

Both tools store the mean ``mu`` (shape ``(D,)``) and covariance ``sigma`` (``(D, D)``) of a
data set's Inception features in a NumPy ``.npz`` archive (pytorch-fid
``--save-stats``, clean-fid ``make_custom_stats``; the TTUR TensorFlow FID files have the
same two keys). :func:`load_reference_npz` reads such a file from anyone without ever
unpickling, and without ever allocating more than its headers announce: the archive must
hold exactly the members ``mu.npy`` and ``sigma.npy`` (``np.load`` would read a member named
plain ``sigma`` in place of ``sigma.npy``, so such shadows and any other member are
refused), each member's ``.npy`` header (dtype, shape, D at most :data:`MAX_DIM`, the size
of its data) is checked before any array is read, and exactly those two members are read,
with ``allow_pickle=False``. :func:`save_reference_npz` writes a file both tools read back
(``np.savez``, float64, atomically).

Whether two sets of statistics are comparable also depends on how the features were made
(network and resize, see :mod:`.resize`); the file does not say, so the caller records it.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import UsageError
from ..io.files import read_npy_header, write_bytes_atomic

#: The arrays a statistics file must hold.
KEYS = ("mu", "sigma")

#: Largest feature dimension accepted (sigma of 8192^2 float64 is 512 MiB); Inception
#: pool3 features have 2048, and no common extractor gives more than 4096.
MAX_DIM = 8192
#: Rows of ``sigma`` checked at a time (the checks' temporaries stay small).
_ROWS = 512

#: ``sigma`` counts as symmetric when ``max|sigma - sigma.T| <= SYMMETRY_RTOL * max|sigma|``
#: (covariances saved in float32, or summed in different orders, differ by rounding).
SYMMETRY_RTOL = 1e-5


def _refuse(path: Path, reason: str) -> UsageError:
    return UsageError(f"reference statistics {path}: {reason}")


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """``{"mu": ..., "sigma": ...}``: the archive's members ``mu.npy`` and ``sigma.npy``,
    refusing a missing one (naming the arrays present), a name given twice, and any other
    member (a plain ``sigma`` would shadow ``sigma.npy`` in ``np.load``)."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    arrays = {name.removesuffix(".npy") for name in names if name.endswith(".npy")}
    missing = [key for key in KEYS if key not in arrays]
    if missing:
        present = ", ".join(repr(key) for key in sorted(arrays)) or "no arrays"
        raise _refuse(path, f"no {' or '.join(repr(k) for k in missing)} array; "
                            f"the file holds {present}")
    wanted = {f"{key}.npy" for key in KEYS}
    for name in names:
        shown = repr(name[:60])  # a hostile name may be long or hold line breaks
        if name in KEYS:
            raise _refuse(path, f"the member {shown} would be read in place of '{name}.npy' "
                                "by np.load; refusing a file with such a shadow")
        if name not in wanted:
            raise _refuse(path, f"holds the member {shown} besides 'mu.npy' and 'sigma.npy'; "
                                "a statistics file holds only those two")
        if names.count(name) > 1:
            raise _refuse(path, f"the member {shown} is in the archive twice")
    return {info.filename.removesuffix(".npy"): info for info in infos}


#: What a member's ``.npy`` header says: shape, dtype, and the bytes of data that follow it.
Header = tuple[tuple[int, ...], np.dtype, int]


def _read_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Header:
    """The shape and dtype in the ``.npy`` header of ``member``, and the bytes of data the
    member holds after it (from the zip entry's size, which bounds what is ever read)."""
    with archive.open(member) as handle:
        shape, _, dtype = read_npy_header(handle)
        return shape, dtype, member.file_size - handle.tell()


def _check_sizes(headers: dict[str, Header], members: dict[str, zipfile.ZipInfo]) -> None:
    """A member holding less or more data than its header announces is damaged
    (``ValueError``); checked after the headers, before any data is read."""
    for key, (shape, dtype, held) in headers.items():
        expected = math.prod(shape) * dtype.itemsize
        if held != expected:
            raise ValueError(f"{members[key].filename!r} holds {held} bytes of data, its "
                             f"header announces {expected}")


def _read_array(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(member) as handle:
        array = np.lib.format.read_array(handle, allow_pickle=False)
    return np.asarray(array, dtype=np.float64)


def _describe_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) if shape else "a scalar"


def _check_header(path: Path, headers: dict[str, Header], dim: int | None) -> None:
    for key, (_, dtype, _held) in headers.items():
        if dtype.hasobject:
            raise _refuse(path, f"{key!r} is an object (pickled) array; refusing to unpickle it")
        if dtype.kind not in "fiu":
            raise _refuse(path, f"{key!r} has dtype {dtype}, not real numbers")
    _check_shapes(path, headers["mu"][0], headers["sigma"][0], dim)


def _check_shapes(path: Path, mu: tuple[int, ...], sigma: tuple[int, ...],
                  dim: int | None) -> None:
    if len(mu) != 1 or mu[0] < 1:
        raise _refuse(path, f"'mu' must be a vector of D values, got shape {_describe_shape(mu)}")
    if len(sigma) != 2 or sigma[0] != sigma[1]:
        raise _refuse(path, f"'sigma' must be a square DxD matrix, got shape "
                            f"{_describe_shape(sigma)}")
    if sigma[0] != mu[0]:
        raise _refuse(path, f"'mu' has {mu[0]} values but 'sigma' is {sigma[0]}x{sigma[1]}")
    if mu[0] > MAX_DIM:
        raise _refuse(path, f"D = {mu[0]} is over the limit of {MAX_DIM} features")
    if dim is not None and mu[0] != dim:
        raise _refuse(path, f"statistics of {mu[0]} features, but the extractor gives {dim}")


def _check_values(path: Path, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Finite values, a symmetric ``sigma`` and no negative variance; ``sigma`` is checked
    :data:`_ROWS` rows at a time, so the check needs little memory beside it."""
    blocks = [(i, sigma[i:i + _ROWS]) for i in range(0, sigma.shape[0], _ROWS)]
    for key, parts in (("mu", [mu]), ("sigma", [block for _, block in blocks])):
        bad = sum(int(np.count_nonzero(~np.isfinite(part))) for part in parts)
        if bad:
            raise _refuse(path, f"{key!r} has {bad} non-finite value(s) (NaN or infinity)")
    scale = max((float(np.abs(block).max()) for _, block in blocks if block.size), default=0.0)
    asymmetry = max((float(np.abs(block - sigma[:, i:i + _ROWS].T).max())
                     for i, block in blocks if block.size), default=0.0)
    if asymmetry > SYMMETRY_RTOL * scale:
        raise _refuse(path, f"'sigma' is not symmetric (max |sigma - sigma.T| = "
                            f"{asymmetry:.3g}, max |sigma| = {scale:.3g}); not a covariance")
    negative = int(np.count_nonzero(np.diagonal(sigma) < 0))
    if negative:
        raise _refuse(path, f"'sigma' has {negative} negative variance(s) on its diagonal; "
                            f"not a covariance")


def load_reference_npz(path: str | Path, dim: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Read ``mu`` ``(D,)`` and ``sigma`` ``(D, D)`` as float64 from a pytorch-fid or
    clean-fid statistics file; ``dim``, when given, is the D the caller's extractor has.

    Refuses, as one :class:`~ganforge.core.errors.UsageError` line naming the file: a missing
    file, a file that is not an ``.npz`` (zip) archive, object (pickled) arrays, missing
    keys (naming those present), members besides ``mu.npy`` and ``sigma.npy`` (a shadowing
    ``sigma``, a name given twice, anything else), non-numeric dtypes, wrong or mismatched
    shapes, D over :data:`MAX_DIM` or not ``dim``, a member whose size is not what its
    header announces, non-finite values, a non-symmetric ``sigma`` (beyond
    :data:`SYMMETRY_RTOL`) and negative variances. Everything the headers tell is checked
    before any array is read. Nothing is ever unpickled.
    """
    path = Path(path)
    if not path.exists():
        raise _refuse(path, "no such file")
    if not path.is_file():
        raise _refuse(path, "not a file")
    try:
        if not zipfile.is_zipfile(path):
            raise _refuse(path, "not an .npz archive (pytorch-fid and clean-fid statistics "
                                "are zip files holding 'mu' and 'sigma')")
        with zipfile.ZipFile(path) as archive:
            members = _members(path, archive)
            headers = {key: _read_header(archive, members[key]) for key in KEYS}
            _check_header(path, headers, dim)
            _check_sizes(headers, members)
            mu = _read_array(archive, members["mu"])
            sigma = _read_array(archive, members["sigma"])
    except UsageError:
        raise
    except OSError as exc:
        raise _refuse(path, f"cannot read it: {exc.strerror or exc}") from None
    except (ValueError, EOFError, zipfile.BadZipFile, KeyError, SyntaxError) as exc:
        raise _refuse(path, f"damaged or not a NumPy archive: {exc}") from None
    _check_values(path, mu, sigma)
    return mu, sigma


def _as_float64(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def save_reference_npz(path: str | Path, mu: np.ndarray | torch.Tensor,
                       sigma: np.ndarray | torch.Tensor) -> Path:
    """Write ``mu`` and ``sigma`` (NumPy arrays or tensors) as float64 to ``path`` with
    ``np.savez`` under the keys pytorch-fid and clean-fid read, atomically (a temporary
    file beside it, then a rename). The name must end in ``.npz``: pytorch-fid takes only
    such paths for statistics. The arrays pass the checks :func:`load_reference_npz` makes;
    a failure to write is a :class:`~ganforge.core.errors.StorageError` naming the file."""
    path = Path(path)
    if path.suffix != ".npz":
        raise _refuse(path, "the name must end in .npz (pytorch-fid reads statistics only "
                            "from such files)")
    mu64, sigma64 = _as_float64(mu), _as_float64(sigma)
    _check_shapes(path, mu64.shape, sigma64.shape, None)
    _check_values(path, mu64, sigma64)
    buffer = io.BytesIO()
    np.savez(buffer, mu=mu64, sigma=sigma64)
    if not path.parent.is_dir():
        raise _refuse(path, f"folder {path.parent} does not exist")
    return write_bytes_atomic(path, buffer.getvalue())
