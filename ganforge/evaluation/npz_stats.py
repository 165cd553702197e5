"""Reference statistics in the ``.npz`` files pytorch-fid and clean-fid read and write.

Both tools store the mean ``mu`` (shape ``(D,)``) and covariance ``sigma`` (``(D, D)``) of a
data set's Inception features in a NumPy ``.npz`` archive (pytorch-fid
``--save-stats``, clean-fid ``make_custom_stats``; the TTUR TensorFlow FID files have the
same two keys). :func:`load_reference_npz` reads such a file from anyone without ever
unpickling: each array's ``.npy`` header (dtype and shape) is checked before its data is
read, and the data is read with ``allow_pickle=False``. :func:`save_reference_npz` writes a
file both tools read back (``np.savez``, float64, atomically).

Whether two sets of statistics are comparable also depends on how the features were made
(network and resize, see :mod:`.resize`); the file does not say, so the caller records it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..files import write_bytes_atomic

#: The arrays a statistics file must hold.
KEYS = ("mu", "sigma")

#: Largest feature dimension accepted (sigma of 16384^2 float64 is 2 GiB); Inception
#: pool3 features have 2048.
MAX_DIM = 16384

#: ``sigma`` counts as symmetric when ``max|sigma - sigma.T| <= SYMMETRY_RTOL * max|sigma|``
#: (covariances saved in float32, or summed in different orders, differ by rounding).
SYMMETRY_RTOL = 1e-5


def _refuse(path: Path, reason: str) -> UsageError:
    return UsageError(f"reference statistics {path}: {reason}")


def _read_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), dtype


def _describe_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) if shape else "a scalar"


def _check_header(path: Path, headers: dict[str, tuple[tuple[int, ...], np.dtype]],
                  dim: int | None) -> None:
    for key, (_, dtype) in headers.items():
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
    for key, array in (("mu", mu), ("sigma", sigma)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise _refuse(path, f"{key!r} has {bad} non-finite value(s) (NaN or infinity)")
    scale = float(np.abs(sigma).max())
    asymmetry = float(np.abs(sigma - sigma.T).max())
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

    Refuses, as one :class:`~ganforge.errors.UsageError` line naming the file: a missing
    file, a file that is not an ``.npz`` (zip) archive, object (pickled) arrays, missing
    keys (naming those present), non-numeric dtypes, wrong or mismatched shapes, D over
    :data:`MAX_DIM` or not ``dim``, non-finite values, a non-symmetric ``sigma`` (beyond
    :data:`SYMMETRY_RTOL`) and negative variances. Nothing is ever unpickled.
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
            arrays = {name.removesuffix(".npy"): name for name in archive.namelist()
                      if name.endswith(".npy")}
            missing = [key for key in KEYS if key not in arrays]
            if missing:
                present = ", ".join(repr(key) for key in sorted(arrays)) or "no arrays"
                raise _refuse(path, f"no {' or '.join(repr(k) for k in missing)} array; "
                                    f"the file holds {present}")
            headers = {key: _read_header(archive, arrays[key]) for key in KEYS}
        _check_header(path, headers, dim)
        with np.load(path, allow_pickle=False) as npz:
            mu = np.asarray(npz["mu"], dtype=np.float64)
            sigma = np.asarray(npz["sigma"], dtype=np.float64)
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
    a failure to write is a :class:`~ganforge.errors.StorageError` naming the file."""
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
