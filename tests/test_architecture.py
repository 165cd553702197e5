"""docs/architecture.md stays the true map of the code: every module is in it, every row's
module exists, every module has a layer and no import points up a layer
(tools/architecture_map.py does the reading; ``--write`` regenerates the map). And no
module grows past 500 lines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("architecture_map",
                                              ROOT / "tools" / "architecture_map.py")
assert spec is not None and spec.loader is not None
amap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(amap)

MAX_LINES = 500


def page() -> str:
    return amap.DOC.read_text(encoding="utf-8")


def test_the_map_is_true_to_the_tree() -> None:
    assert amap.problems(page()) == []


def test_every_layer_of_the_design_is_in_the_table() -> None:
    names = [name for _number, name, _entries in amap.layers(page())]
    for wanted in ("io: files", "core", "nn helpers", "components", "runs", "Python API",
                   "command line"):
        assert wanted in names
    numbers = [number for number, _name, _entries in amap.layers(page())]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_an_upward_import_is_caught() -> None:
    """The checker is not blind: with io and the CLI swapped, io's imports of the core's
    foundation still pass, and the CLI's imports of everything below it point up."""
    text = page()
    swapped = text.replace("| 8 | command line |", "| 99 | command line |").replace(
        "| 1 | io: files |", "| 8 | io: files |").replace("| 99 | command line |",
                                                        "| 1 | command line |")
    found = amap.problems(swapped)
    assert any(p.startswith("ganforge/cli/") and "imports" in p for p in found)


def test_a_missing_and_a_stale_row_are_caught() -> None:
    text = page()
    row = next(line for line in text.splitlines()
               if line.startswith("| `ganforge/io/files.py` |"))
    without = text.replace(row + "\n", "")
    assert any("missing from the map: | `ganforge/io/files.py`" in p
               for p in amap.problems(without))
    stale = text.replace(row, row + "\n| `ganforge/gone.py` | was here |")
    assert "the map names a module that is gone: ganforge/gone.py" in amap.problems(stale)


def test_no_module_is_over_500_lines() -> None:
    long = {path: n for path in amap.modules()
            if (n := len((ROOT / path).read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
