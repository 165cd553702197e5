"""The names plugin authors are told to import from ``ganforge`` exist there: the base class
of every kind (writing-plugins.md lists them all)."""

from __future__ import annotations

import ganforge
from ganforge.interfaces import BASE_CLASSES


def test_every_kind_has_its_base_class_exported() -> None:
    exported = {name: getattr(ganforge, name) for name in ganforge.__all__
                if name != "__version__"}
    for kind, base in BASE_CLASSES.items():
        assert base in exported.values(), f"{kind}: {base.__name__} is not in ganforge"
    assert ganforge.Regularizer is BASE_CLASSES["regularizer"]
    assert ganforge.Augment is BASE_CLASSES["augment"]
