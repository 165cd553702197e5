"""Ceilings on numbers read from files (checkpoints, embedded recipes, ``config.json``).

Every such file is untrusted input: each ceiling lies far above any real use and below the
point where the number does harm. This module imports nothing, so the recipe model (and
the command line's ``--help``) can use it without importing torch.
"""

from __future__ import annotations

#: Steps a recipe can train, and the largest step a checkpoint may record.
MAX_STEPS = 10**9
#: Upper bounds of the trainer's counters: far above any real run, low enough that no
#: arithmetic on them overflows a 64-bit tensor or a ``range``.
MAX_BATCHES = 2**62
MAX_ROLLBACKS = 2**31
MAX_THREADS = 2**16
#: Refuse safetensors headers larger than this before parsing them (a hostile length field).
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: A ``config.json`` larger than this is refused before it is parsed.
MAX_CONFIG_BYTES = 1024 * 1024
