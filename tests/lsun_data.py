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


#: lmdb's page header (MDB_page): page number (8 bytes), pad (2), flags (2), lower (2),
#: upper (2), then the 2-byte offsets of the page's nodes; a branch node starts with the
#: child's page number in three 16-bit words (mn_lo, mn_hi, mn_flags).
PAGE_HEADER = 16
P_BRANCH, P_LEAF = 0x01, 0x02


def _branch_children(data: bytes, page: int, psize: int) -> list[int]:
    """The child page numbers of branch page ``page``, in key order."""
    base = page * psize
    lower = struct.unpack_from("<H", data, base + 12)[0]
    children = []
    for i in range((lower - PAGE_HEADER) // 2):
        node = struct.unpack_from("<H", data, base + PAGE_HEADER + 2 * i)[0]
        lo, hi, top = struct.unpack_from("<HHH", data, base + node)
        children.append(lo | hi << 16 | top << 32)
    return children


def _middle_leaf_page(data: bytes, psize: int) -> int:
    """A leaf page of the main database in the middle of its key order (never the first
    leaf), found by going down from the root through each branch page's middle child."""
    page = _main_root_page(data, psize)
    depth = 0
    while (flags := struct.unpack_from("<H", data, page * psize + 10)[0]) & P_BRANCH:
        children = _branch_children(data, page, psize)
        page = children[len(children) // 2]
        depth += 1
    assert flags & P_LEAF and depth, "the database needs more than one leaf page"
    return page


def _zero_page(lmdb_path: Path, which) -> None:
    """Overwrite page ``which(data, psize)`` of ``data.mdb`` with zeros, keeping the file's
    size and modification time (so a cached key index still matches it)."""
    data_file = lmdb_path / "data.mdb"
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    psize = env.stat()["psize"]
    env.close()
    stat = data_file.stat()
    data = bytearray(data_file.read_bytes())
    page = which(bytes(data), psize)
    data[page * psize:(page + 1) * psize] = bytes(psize)
    data_file.write_bytes(bytes(data))
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def zero_root_page(lmdb_path: Path) -> None:
    """Zero the main database's root page: every read of the database then fails with
    lmdb's MDB_CORRUPTED."""
    _zero_page(lmdb_path, _main_root_page)


def zero_leaf_page(lmdb_path: Path) -> None:
    """Zero a leaf page in the middle of the main database (it needs several leaves: about
    200 of make_lsun's images). Reading one of its keys fails with MDB_CORRUPTED, but a
    cursor walking the keys reaches it from its left neighbour, where lmdb asserts that it
    is a leaf: the process dies with SIGABRT."""
    _zero_page(lmdb_path, _middle_leaf_page)
