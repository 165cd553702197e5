"""From TOML files and ``--set`` strings to one merged, still untyped, recipe table."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any

from ..core.errors import RecipeError
from ..core.structuring import key_path
from ..core.suggest import did_you_mean

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


#: The largest recipe file read, in bytes. Real recipes are a few kilobytes; the cap keeps a
#: huge file (or a device that never ends) from being read into memory.
MAX_RECIPE_BYTES = 1024 * 1024

#: What a file that is not a regular one is, for the message refusing it.
_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str | None:
    """What a file of ``mode`` is when it is not a regular file (None when it is one)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")


def _read_recipe_text(path: Path) -> str:
    """The text of recipe file ``path``: a regular file (a FIFO or a device is refused
    before it is opened, so reading never blocks or runs without end) of at most
    :data:`MAX_RECIPE_BYTES`. Raises ``OSError``, ``UnicodeDecodeError`` or
    :class:`_Refused`."""
    what = _not_regular(os.stat(path).st_mode)
    if what is not None:
        raise _Refused(f"not a regular file but {what}")
    # Non-blocking, in case it was swapped for a FIFO since: then fstat refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        what = _not_regular(os.fstat(fd).st_mode)
        if what is not None:
            raise _Refused(f"not a regular file but {what}")
        data = handle.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise _Refused(f"larger than {MAX_RECIPE_BYTES // 1024 // 1024} MiB, the most a recipe "
                       "may hold")
    return data.decode("utf-8")


class _Refused(Exception):
    """A recipe file ganforge does not read: one line, without the file's name."""


def read_toml(path: Path) -> Table:
    """Parse one TOML file; syntax errors become a :class:`RecipeError` naming the file."""
    try:
        text = _read_recipe_text(path)
    except FileNotFoundError:
        raise RecipeError.single("$", "recipe file not found", source=_show(path)) from None
    except _Refused as exc:
        raise RecipeError.single("$", f"cannot read recipe: {exc}", source=_show(path)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecipeError.single("$", f"cannot read recipe: {exc}", source=_show(path)) from None
    try:
        return _loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError.single("$", f"TOML syntax error: {exc}", source=_show(path)) from None
    except ValueError as exc:
        message = str(exc).split(";")[0]  # not the advice to call sys.set_int_max_str_digits
        raise RecipeError.single("$", f"cannot read TOML: {message}",
                                 source=_show(path)) from None


def same_component(a: Any, b: Any) -> bool:
    """True when two ``use`` values name the same component as far as the text tells:
    equal, or one short and the other qualified with the same short name (``bce`` and
    ``ganforge:bce``: a resolved recipe records qualified names, a variant may say ``bce``).
    Then a table keeps its params; a different component starts afresh."""
    if a == b:
        return True
    if not (isinstance(a, str) and isinstance(b, str)) or (":" in a) == (":" in b):
        return False
    return a.rpartition(":")[2] == b.rpartition(":")[2]


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Table:
    """Merge ``override`` onto ``base``: tables merge, values and arrays replace, and a
    table whose ``use`` changes is replaced whole (its params belong to the old component).
    """
    result: Table = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = result.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            if "use" in value and not same_component(value["use"], old.get("use")):
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

#: Most entries one ``extends`` list may hold. Real lists name a few files; each entry
#: costs a merge, so a generated list of thousands would take minutes.
MAX_EXTENDS_ENTRIES = 64

#: A recipe by name, ``<package>:<recipe>``: ganforge's own (``ganforge:quickstart``), a
#: plugin's (by entry-point name) or any importable package's, read from that package's
#: ``recipes/<recipe>.toml``. The recipe part may name sub-folders (``ganforge:ablations/
#: prior``); no part starts with a dot, so a name never leaves the ``recipes/`` folder.
RECIPE_NAME = re.compile(r"(?P<package>[A-Za-z_][A-Za-z0-9_.-]*):"
                         r"(?P<recipe>[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*)")

#: The folder of ganforge's own recipes (``recipes/`` at the repository root links here).
GANFORGE_RECIPES = Path(__file__).resolve().parent.parent / "recipes"

#: The package name that always means ganforge's own recipes.
GANFORGE = "ganforge"


class _Unresolved(Exception):
    """Why a recipe name does not resolve: one line, without the name itself."""


def is_recipe_name(value: str) -> bool:
    """True for a value of the ``<package>:<recipe>`` form (one not ending in ``.toml``)."""
    return RECIPE_NAME.fullmatch(value) is not None and not value.endswith(".toml")


def _is_file(path: Path) -> bool:
    try:
        return path.expanduser().is_file()
    except (OSError, RuntimeError, ValueError):  # name too long, ~user unknown, NUL byte
        return False


def _plugin_modules() -> dict[str, str]:
    """Installed plugins: entry-point name -> the module it names (first one wins)."""
    modules: dict[str, str] = {}
    try:
        entry_points = metadata.entry_points(group="ganforge")
    except Exception:  # broken metadata of some distribution: no plugins to name
        return modules
    for ep in entry_points:
        modules.setdefault(ep.name, ep.module)
    return modules


def _package_dirs(module: str) -> list[Path] | None:
    """The folders of package ``module``, found without importing it (or its parents):
    ``[]`` for a module that is not a package, ``None`` for one that cannot be found."""
    spec: ModuleSpec | None = None
    try:
        for depth, part in enumerate(module.split(".")):
            if depth == 0:
                spec = importlib.util.find_spec(part)
            elif spec is not None and spec.submodule_search_locations is not None:
                spec = PathFinder.find_spec(f"{spec.name}.{part}",
                                            list(spec.submodule_search_locations))
            else:
                return None
    except (ImportError, ValueError, AttributeError, OSError):
        return None
    if spec is None:
        return None
    return [Path(p) for p in spec.submodule_search_locations or []]


def _recipe_folders(package: str) -> tuple[str, list[Path]]:
    """Who ``package`` is (for messages) and its ``recipes/`` folders, or
    :class:`_Unresolved`."""
    if package == GANFORGE:
        return GANFORGE, [GANFORGE_RECIPES]
    plugins = _plugin_modules()
    if package in plugins:
        module = plugins[package]
        top = module.partition(".")[0]
        label = f"plugin {package!r}"
        dirs = _package_dirs(top)
        if dirs is None:
            raise _Unresolved(f"{label} ships no recipes: its module {module!r} is not found")
        if not dirs:
            raise _Unresolved(f"{label} ships no recipes: its module {module!r} is not in a "
                              "package (recipes live in <package>/recipes/)")
    else:
        label = f"package {package!r}"
        dirs = _package_dirs(package)
        if dirs is None:
            names = sorted(name for name in plugins if name.isprintable())
            raise _Unresolved(f"no plugin or package {package!r} ships recipes"
                              f"{did_you_mean(package, [GANFORGE, *names])} (installed "
                              f"plugins: {', '.join(names) or 'none'})")
        if not dirs:
            raise _Unresolved(f"{label} is a module, not a package: it ships no recipes")
    folders = [d / "recipes" for d in dirs if (d / "recipes").is_dir()]
    if not folders:
        raise _Unresolved(f"{label} ships no recipes (no recipes/ folder in {_show(dirs[0])})")
    return label, folders


def _recipes_in(folders: Iterable[Path]) -> dict[str, Path]:
    """Recipe name (without package) -> file, for every ``*.toml`` under ``folders``; the
    first folder holding a name wins."""
    found: dict[str, Path] = {}
    for folder in folders:
        try:
            paths = sorted(folder.rglob("*.toml"))
        except OSError:  # an unreadable folder lists nothing
            continue
        for path in paths:
            name = path.relative_to(folder).with_suffix("").as_posix()
            if is_recipe_name(f"x:{name}") and _is_file(path):
                found.setdefault(name, path)
    return dict(sorted(found.items()))


def shipped_recipes() -> dict[str, dict[str, Path]]:
    """Every recipe that can be named, by package: ``ganforge`` first, then each installed
    plugin that ships any (``{"ganforge": {"quickstart": Path(...), ...}, ...}``).

    Each folder is listed once, under its first owner: entry points that live in ganforge
    itself (the ``wandb`` and ``mlflow`` trackers) share its ``recipes/`` folder; their
    names (``wandb:quickstart``) still resolve, but the list says ``ganforge:quickstart``."""
    result = {GANFORGE: _recipes_in([GANFORGE_RECIPES])}
    seen = {_folder_key(GANFORGE_RECIPES)}
    for plugin in sorted(_plugin_modules()):
        try:
            _, folders = _recipe_folders(plugin)
        except _Unresolved:
            continue
        folders = [f for f in folders if _folder_key(f) not in seen]
        seen.update(_folder_key(f) for f in folders)
        if recipes := _recipes_in(folders):
            result.setdefault(plugin, recipes)
    return result


def _folder_key(folder: Path) -> str:
    """One spelling per folder, however it was reached (symlinks, ``..``)."""
    try:
        return str(folder.resolve())
    except (OSError, RuntimeError):
        return str(folder)


def _find_named(value: str) -> Path:
    """The file recipe name ``value`` (``<package>:<recipe>``) stands for, or
    :class:`_Unresolved`."""
    package, _, name = value.partition(":")
    label, folders = _recipe_folders(package)
    for folder in folders:
        if _is_file(folder / f"{name}.toml"):
            return folder / f"{name}.toml"
    known = list(_recipes_in(folders))
    raise _Unresolved(f"{label} ships no recipe {name!r}{did_you_mean(name, known)} (its "
                      f"recipes: {', '.join(known) or 'none'})")


def find_recipe(value: str | Path) -> Path:
    """The file a recipe argument stands for: ``value`` itself when a file by that path
    exists, else the file of recipe name ``value`` (``<package>:<recipe>``), else ``value``
    (whose reading then fails with "recipe file not found")."""
    path = Path(value)
    text = str(value)
    if _is_file(path) or not is_recipe_name(text):
        return path
    try:
        return _find_named(text)
    except _Unresolved as exc:
        raise RecipeError.single("$", str(exc), source=text) from None


def load_raw(path: str | Path) -> Table:
    """Read ``path`` and everything it ``extends`` (relative to each file), merged.

    ``extends`` may be one path or a list of at most :data:`MAX_EXTENDS_ENTRIES` paths,
    applied in order; cycles are errors, as are chains more than :data:`MAX_EXTENDS_DEPTH`
    files deep, and files that are not regular ones or hold more than
    :data:`MAX_RECIPE_BYTES`. Each file is read and merged
    once per call, however many files extend it. A path (or ``extends`` value) of the form
    ``<package>:<recipe>`` that is not an existing file names a recipe shipped in a package
    (:data:`RECIPE_NAME`); the name and its file are one node of the chain.
    """
    text = str(path)
    found = find_recipe(path)
    label = text if found != Path(path) else None
    return _load_chain(found, (), {}, label)


_Seen = tuple[tuple[Path, str], ...]


def _load_chain(path: Path, seen: _Seen, loaded: dict[Path, Table],
                label: str | None = None) -> Table:
    """``path`` merged onto its parents. ``seen`` is the chain from the root to ``path``'s
    child, each as (resolved path, how messages show it); ``label`` is how ``path`` was
    named when it was named by recipe name. ``loaded`` holds every file already merged in
    this load, by resolved path, so that a parent shared by many files (a diamond) costs
    one read, not one per route."""
    resolved = path.resolve()
    shown = label or _show(resolved)
    if any(resolved == node for node, _ in seen):
        chain = " -> ".join(name for _, name in (*seen, (resolved, shown)))
        raise RecipeError.single("$.extends", f"cycle in extends: {chain}", source=_show(path))
    if resolved in loaded:
        # A file merged once has no cycle below it, whatever the route to it now.
        return loaded[resolved]
    if len(seen) >= MAX_EXTENDS_DEPTH:
        raise RecipeError.single("$.extends", f"extends chain deeper than {MAX_EXTENDS_DEPTH} "
                                 f"files: {seen[0][1]} -> ... -> {seen[-1][1]} -> {shown}",
                                 source=_show(path))
    table = read_toml(path)
    parents = table.pop("extends", None)
    if parents is not None:
        table = merge(_load_parents(path, parents, (*seen, (resolved, shown)), loaded), table)
    loaded[resolved] = table
    return table


def _load_parents(path: Path, parents: Any, seen: _Seen, loaded: dict[Path, Table]) -> Table:
    """The files ``path`` extends (its ``extends`` value ``parents``), merged in order."""
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError.single("$.extends", "expected a path or a list of paths",
                                 source=_show(path))
    if len(parents) > MAX_EXTENDS_ENTRIES:
        raise RecipeError.single("$.extends", f"{len(parents)} entries; an extends list holds "
                                 f"at most {MAX_EXTENDS_ENTRIES}", source=_show(path))
    base: Table = {}
    for parent in parents:
        parent_path = path.parent / parent
        label = None
        if not _is_file(parent_path) and is_recipe_name(parent):
            try:
                parent_path, label = _find_named(parent), parent
            except _Unresolved as exc:
                raise RecipeError.single("$.extends", f"extended recipe {parent!r}: {exc}",
                                         source=_show(path)) from None
        elif not _is_file(parent_path):
            what = _kind_of(parent_path)
            if what is not None:
                raise RecipeError.single("$.extends", f"extended recipe "
                                         f"{_expanded(parent_path)!r} is not a regular file "
                                         f"but {what}", source=_show(path))
            hint = ""
            if is_recipe_name(parent.removesuffix(".toml")):
                hint = f" (a recipe by name has no .toml: {parent.removesuffix('.toml')!r})"
            raise RecipeError.single("$.extends", f"extended recipe {_expanded(parent_path)!r} "
                                     f"not found{hint}", source=_show(path))
        else:
            parent_path = parent_path.expanduser()
        base = merge(base, _load_chain(parent_path, seen, loaded, label))
    return base


def _kind_of(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file (a FIFO, a device, a
    folder), else None."""
    try:
        return _not_regular(os.stat(path.expanduser()).st_mode)
    except (OSError, RuntimeError, ValueError):
        return None


def _expanded(path: Path) -> str:
    """``str(path.expanduser())``, or ``str(path)`` where that fails."""
    try:
        return str(path.expanduser())
    except (RuntimeError, ValueError, OSError):
        return str(path)


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
    if last == "use" and node.get("use") is not None \
            and not same_component(node.get("use"), value):
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
