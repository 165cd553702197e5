"""The fixed component kinds. Adding a kind means adding its base class here and in
:mod:`ganforge.core.interfaces`; nothing else in the registry changes."""

from __future__ import annotations

#: Every kind, in the order the CLI lists them.
KINDS: tuple[str, ...] = ("generator", "discriminator", "loss", "optimizer", "scheduler",
                          "regularizer", "augment", "dataset", "metric", "extractor",
                          "callback")
