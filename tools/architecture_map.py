"""docs/architecture.md's module map and layers, checked against the tree.

The map lists every module of ganforge and of the two shipped plugins, one row each; the
layers table says which layer each package or module belongs to. This script (and
tests/test_architecture.py, which runs the same checks) finds

* modules the map lacks, with the row to add (the first line of the module's docstring),
* rows of the map whose module is gone,
* modules no layer claims, and every import that points up a layer.

    python tools/architecture_map.py          # report; exit 1 when the map is not true
    python tools/architecture_map.py --rows   # print a row for every module
    python tools/architecture_map.py --write  # rewrite the map section from the tree

``--write`` keeps a row's text when the doc has one (a hand-written description) and
takes the first sentence of the module's docstring for a new module.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
#: Where the modules are: ganforge itself and the plugins it ships.
PACKAGES = ("ganforge", "plugins/dcgan/ganforge_dcgan", "plugins/resnet/ganforge_resnet")
#: Not modules of the package: the plugin template's sources, rendered by `new plugin`.
NOT_MODULES = ("ganforge/templates/",)

_ROW = re.compile(r"^\| `([^`]+\.py)` \|", re.MULTILINE)
_LAYER = re.compile(r"^\| (\d+) \| ([^|]+) \| (.+) \|$", re.MULTILINE)


def modules() -> list[str]:
    """Every module, as a path from the repository root."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(NOT_MODULES):
                found.append(rel)
    return found


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section of the page."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def mapped(text: str) -> list[str]:
    """The module paths of the map's rows."""
    return _ROW.findall(section(text, "Module map"))


def layers(text: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """The layers table: (number, name, the paths or folder prefixes it holds)."""
    rows = []
    for number, name, cell in _LAYER.findall(section(text, "Layers")):
        rows.append((int(number), name.strip(), tuple(re.findall(r"`([^`]+)`", cell))))
    return rows


def layer_of(path: str, table: list[tuple[int, str, tuple[str, ...]]]) -> int | None:
    """The layer of a module path: its most specific entry (a file or a folder prefix)."""
    best: tuple[int, int] | None = None
    for number, _name, entries in table:
        for entry in entries:
            holds = path == entry or (entry.endswith("/") and path.startswith(entry))
            if holds and (best is None or len(entry) > best[0]):
                best = (len(entry), number)
    return None if best is None else best[1]


def _package_root(path: str) -> str:
    return next(p for p in PACKAGES if path.startswith(p + "/"))


def _target(dotted: str, base: str) -> str | None:
    """The module path of an imported dotted name within ``base`` (a package folder)."""
    top = Path(base).name
    parts = dotted.split(".")
    if parts[0] != top:
        return None
    root = Path(base).parent
    while parts:
        candidate = root.joinpath(*parts)
        for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if (ROOT / path).exists():
                return path.as_posix()
        parts = parts[:-1]  # ``from pkg.module import name``: the module holds the name
    return None


def imports(path: str) -> list[tuple[int, str]]:
    """(line, imported module path) of every import of ganforge (or of the module's own
    plugin package) in ``path``, ``if TYPE_CHECKING:`` blocks included."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    base = _package_root(path)
    own = Path(path).with_suffix("").as_posix().split("/")
    own = own[len(Path(base).parent.parts):]  # dotted parts from the package's name
    if own[-1] == "__init__":
        own = own[:-1] + ["__init__"]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = own[:-node.level]
                dotted = ".".join(anchor + ([node.module] if node.module else []))
            else:
                dotted = node.module or ""
            names = [f"{dotted}.{alias.name}" for alias in node.names] or [dotted]
        for dotted in names:
            for package in {base, "ganforge"}:
                target = _target(dotted, package)
                if target is not None and target != path:
                    found.append((node.lineno, target))
                    break
    return found


def problems(text: str) -> list[str]:
    """Everything that makes the map untrue, one line each."""
    table = layers(text)
    tree, rows = modules(), mapped(text)
    found = [f"missing from the map: {row(path)}" for path in tree if path not in rows]
    found += [f"the map names a module that is gone: {path}" for path in rows
              if path not in tree]
    for path in tree:
        mine = layer_of(path, table)
        if mine is None:
            found.append(f"no layer holds {path}")
            continue
        for line, target in imports(path):
            theirs = layer_of(target, table)
            if theirs is not None and theirs > mine:
                found.append(f"{path}:{line} imports {target} (layer {theirs} above {mine})")
    return found


def row(path: str) -> str:
    """The map's row for a module: its path and the first sentence of its docstring."""
    doc = ast.get_docstring(ast.parse((ROOT / path).read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.split("\n\n")[0].split()) or "(no docstring)"
    sentence = re.split(r"(?<=[.;])\s+(?=[A-Z`(])", text)[0].rstrip(".;")
    return f"| `{path}` | {sentence.replace('|', '/')} |"


def written_map(text: str) -> str:
    """The map section for the tree, grouped by layer, keeping the doc's own rows."""
    table, kept = layers(text), {}
    for line in section(text, "Module map").splitlines():
        match = _ROW.match(line)
        if match:
            kept[match.group(1)] = line
    lines = ["## Module map", "",
             "Every module, by layer (see \"Layers\" above); the text is the first sentence "
             "of the module's docstring unless written here.", ""]
    by_layer: dict[int | None, list[str]] = {}
    for path in modules():
        by_layer.setdefault(layer_of(path, table), []).append(path)
    names = {number: name for number, name, _ in table}
    for number in sorted(by_layer, key=lambda n: -1 if n is None else n):
        lines += [f"### {number}: {names.get(number, 'no layer')}" if number is not None
                  else "### no layer", "", "| module | its one job |", "|---|---|"]
        lines += [kept.get(path) or row(path) for path in by_layer[number]]
        lines.append("")
    return "\n".join(lines)


def write(text: str) -> str:
    """The page with its map section rewritten from the tree."""
    start = text.index("## Module map\n")
    end = text.find("\n## ", start + 1)
    tail = text[end + 1:] if end != -1 else ""
    return text[:start] + written_map(text) + "\n" + tail


def main(argv: list[str]) -> int:
    if "--write" in argv:
        DOC.write_text(write(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    if "--rows" in argv:
        print("\n".join(row(path) for path in modules()))
        return 0
    found = problems(DOC.read_text(encoding="utf-8"))
    print("\n".join(found) or "docs/architecture.md is true to the tree")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
