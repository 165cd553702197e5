"""Deriving seeds: one helper for every random stream a run draws from.

Every stream (latents of each rank, the sample grid's fixed latents, the data order of each
epoch, a rollback's fresh latents, a synthetic image) gets its own seed from the run's seed,
the stream's purpose and its indices, through SHA-256. Streams for different purposes or
indices are independent and never collide, which arithmetic such as
``seed * 1_000_003 + epoch`` cannot promise (seed 1 at epoch 0 is seed 0 at epoch
1,000,003), and any recipe seed maps into the range ``torch.Generator.manual_seed`` takes.
"""

from __future__ import annotations

import hashlib

#: Derived seeds are in ``[0, 2**63)``.
SEED_BITS = 63


def derive_seed(seed: int, purpose: str, *indices: int) -> int:
    """The seed of stream ``purpose`` (and ``indices``) of a run seeded with ``seed``."""
    text = ":".join(["ganforge", purpose, str(seed), *map(str, indices)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**SEED_BITS - 1)
