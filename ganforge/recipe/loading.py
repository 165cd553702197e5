"""From TOML files and ``--set`` strings to one merged, still untyped, recipe table."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import RecipeError
from ..structuring import key_path

Table = dict[str, Any]


def _show(path: Path) -> str:
    """``path`` for a one-line message: quoted if it holds a line break or the like."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _loads(text: str) -> Table:
    """``tomllib.loads``, failing with a ``ValueError`` (a ``TOMLDecodeError`` for bad syntax)
    also on what breaks it past its syntax checks: nesting deeper than the stack, and
    integers of more digits than ``sys.get_int_max_str_digits()`` (a plain ``ValueError``).
    """
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ValueError("arrays or tables nested too deeply") from None


def read_toml(path: Path) -> Table:
    """Parse one TOML file; syntax errors become a :class:`RecipeError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError.single("$", "recipe file not found", source=_show(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError.single("$", f"cannot read recipe: {exc}", source=_show(path)) from None
    try:
        return _loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError.single("$", f"TOML syntax error: {exc}", source=_show(path)) from None
    except ValueError as exc:
        message = str(exc).split(";")[0]  # not the advice to call sys.set_int_max_str_digits
        raise RecipeError.single("$", f"cannot read TOML: {message}",
                                 source=_show(path)) from None


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Table:
    """Merge ``override`` onto ``base``: tables merge, values and arrays replace, and a
    table whose ``use`` changes is replaced whole (its params belong to the old component).
    """
    result: Table = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = result.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            if "use" in value and value["use"] != old.get("use"):
                result[key] = copy.deepcopy(dict(value))
            else:
                result[key] = merge(old, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


#: Most files one ``extends`` chain may pass through, root included. Real chains are a
#: few files deep; the cap turns a runaway (or generated) chain into one clear line instead
#: of a RecursionError.
MAX_EXTENDS_DEPTH = 64


def load_raw(path: str | Path) -> Table:
    """Read ``path`` and everything it ``extends`` (relative to each file), merged.

    ``extends`` may be one path or a list of paths, applied in order; cycles are errors, as
    are chains more than :data:`MAX_EXTENDS_DEPTH` files deep. Each file is read and merged
    once per call, however many files extend it.
    """
    return _load_chain(Path(path), (), {})


def _load_chain(path: Path, seen: tuple[Path, ...], loaded: dict[Path, Table]) -> Table:
    """``path`` merged onto its parents. ``seen`` is the chain from the root to ``path``'s
    child; ``loaded`` holds every file already merged in this load, by resolved path, so
    that a parent shared by many files (a diamond) costs one read, not one per route."""
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(_show(p) for p in (*seen, resolved))
        raise RecipeError.single("$.extends", f"cycle in extends: {chain}", source=_show(path))
    if resolved in loaded:
        # A file merged once has no cycle below it, whatever the route to it now.
        return loaded[resolved]
    if len(seen) >= MAX_EXTENDS_DEPTH:
        raise RecipeError.single("$.extends", f"extends chain deeper than {MAX_EXTENDS_DEPTH} "
                                 f"files: {_show(seen[0])} -> ... -> {_show(seen[-1])} -> "
                                 f"{_show(resolved)}", source=_show(path))
    table = read_toml(path)
    parents = table.pop("extends", None)
    if parents is not None:
        table = merge(_load_parents(path, parents, (*seen, resolved), loaded), table)
    loaded[resolved] = table
    return table


def _load_parents(path: Path, parents: Any, seen: tuple[Path, ...],
                  loaded: dict[Path, Table]) -> Table:
    """The files ``path`` extends (its ``extends`` value ``parents``), merged in order."""
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError.single("$.extends", "expected a path or a list of paths",
                                 source=_show(path))
    base: Table = {}
    for parent in parents:
        parent_path = path.parent / parent
        try:
            parent_path = parent_path.expanduser()
            found = parent_path.is_file()
        except (OSError, RuntimeError, ValueError):  # name too long, ~user unknown, NUL byte
            found = False
        if not found:
            raise RecipeError.single("$.extends", f"extended recipe {str(parent_path)!r} "
                                     "not found", source=_show(path))
        base = merge(base, _load_chain(parent_path, seen, loaded))
    return base


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.path=value``; the value is read as a TOML value, else kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.strip() for p in parts):
        raise RecipeError.single("--set", f"expected key.path=value, got {text!r}")
    raw = raw.strip()
    try:
        value = _loads(f"v = {raw}")["v"]
    except ValueError:  # tomllib.TOMLDecodeError included
        value = raw
    return [p.strip() for p in parts], value


def set_path(table: Table, parts: list[str], value: Any, label: str = "") -> None:
    """Set ``table[parts[0]][parts[1]]... = value`` in place, creating tables on the way.

    Setting ``X.use`` to a different name clears table X first: the old component's params
    do not apply to the new one. ``label`` names the override in errors.
    """
    node = table
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            path = "$"
            for name in parts[: i + 1]:
                path = key_path(path, name)
            raise RecipeError.single(path, f"is a value, not a table ({label})")
        node = child
    last = parts[-1]
    if last == "use" and node.get("use") not in (None, value):
        node.clear()
    node[last] = copy.deepcopy(value)


def replaces_table(parts: list[str], value: Any) -> bool:
    """True for a setting that replaces a whole table: ``X.use = name`` (a new component,
    whose table starts afresh) or ``X = {...}``."""
    return parts[-1] == "use" or isinstance(value, Mapping)


def settings_order(settings: Iterable[tuple[list[str], Any]]) -> list[int]:
    """The order (indices into ``settings``) in which to apply one set of overrides: those
    that replace a table first, shallowest first, then the value settings as given.

    As Hydra applies group choices before values, ``dataset.image_size=64`` then survives a
    ``dataset.use=synthetic`` written after it: within one command line (or one sweep
    variant) the outcome does not depend on the order the overrides are written in.
    """
    settings = list(settings)
    replacing = [replaces_table(parts, value) for parts, value in settings]
    tables = [i for i, flag in enumerate(replacing) if flag]
    values = [i for i, flag in enumerate(replacing) if not flag]
    return sorted(tables, key=lambda i: len(settings[i][0])) + values


def apply_settings(table: Table, settings: Iterable[tuple[list[str], Any, str]]) -> None:
    """Apply ``(parts, value, label)`` settings to ``table`` in place, in the order of
    :func:`settings_order` (table replacements, then values). ``label`` names each setting
    in errors."""
    settings = list(settings)
    for i in settings_order((parts, value) for parts, value, _ in settings):
        set_path(table, *settings[i])


def apply_overrides(table: Mapping[str, Any], overrides: Iterable[str]) -> Table:
    """Apply ``--set`` strings: first those that change a table's ``use`` (which replaces
    the table) or set a whole table, then the value overrides, each group in order."""
    result: Table = copy.deepcopy(dict(table))
    parsed = [(*parse_override(text), f"--set {text!r}") for text in overrides]
    apply_settings(result, parsed)
    return result
