"""Building small LSUN-format lmdb databases for tests and benchmarks.

The official layout: ``<root>/<category>_lmdb/{data.mdb,lock.mdb}``, keys are hex digests
(bytes), values are encoded WebP or JPEG images of varying sizes.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

#: Planted bad values: (key suffix, bytes).
BAD_VALUES = {
    "truncated": None,  # filled in by make_lsun: a JPEG cut in half
    "zero-byte": b"",
    "garbage": b"this is not an image at all" * 10,
}


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def random_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth random colour image (compresses like a photo, not like noise)."""
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR)


def make_lsun(root: Path, category: str = "bedroom_train", webp: int = 12, jpeg: int = 12,
              bad: bool = True, seed: int = 0, size: tuple[int, int] = (80, 60)) -> Path:
    """Write ``<root>/<category>_lmdb`` and return it; returns the lmdb folder."""
    rng = np.random.default_rng(seed)
    path = root / f"{category}_lmdb"
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for i in range(webp + jpeg):
            w, h = size[0] + int(rng.integers(0, 20)), size[1] + int(rng.integers(0, 20))
            image = random_image(rng, w, h)
            data = encode(image, "WEBP", quality=90) if i < webp else encode(image, "JPEG",
                                                                               quality=90)
            key = hashlib.sha1(f"{category}-{seed}-{i}".encode()).hexdigest().encode()
            txn.put(key, data)
        if bad:
            whole = encode(random_image(rng, *size), "JPEG")
            for name, value in BAD_VALUES.items():
                data = whole[: len(whole) // 2] if value is None else value
                txn.put(f"zz-bad-{name}".encode(), data)
    env.close()
    return path


def add_entry(lmdb_path: Path, key: bytes, seed: int = 99) -> None:
    """Add one valid image (changes the database, so cached indexes go stale)."""
    env = lmdb.open(str(lmdb_path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        txn.put(key, encode(random_image(np.random.default_rng(seed), 64, 64), "WEBP"))
    env.close()


def _main_root_page(data: bytes, psize: int) -> int:
    """The root page of the main database, from the newer of the two meta pages (lmdb's
    MDB_meta: after the 16-byte page header, the main MDB_db's md_root is at +128 and the
    meta's txnid at +144)."""
    metas = [struct.unpack_from("<QQ", data, page * psize + 136) for page in (0, 1)]
    newer = max((0, 1), key=lambda page: metas[page][1])
    return struct.unpack_from("<Q", data, newer * psize + 128)[0]


def zero_root_page(lmdb_path: Path) -> None:
    """Overwrite the main database's root page with zeros, keeping the file's size and
    modification time (so a cached key index still matches it): every read of the
    database then fails with lmdb's MDB_CORRUPTED."""
    data_file = lmdb_path / "data.mdb"
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    psize = env.stat()["psize"]
    env.close()
    stat = data_file.stat()
    data = bytearray(data_file.read_bytes())
    root = _main_root_page(bytes(data), psize)
    data[root * psize:(root + 1) * psize] = bytes(psize)
    data_file.write_bytes(bytes(data))
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
