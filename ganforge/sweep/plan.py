"""From a sweep recipe to a validated plan: one resolved recipe per variant and seed.

```toml
extends = "../quickstart.toml"

[sweep]
mode = "grid"                 # axes combined as a grid (default) or "zip"ped
seeds = [0, 1, 2]             # every variant is run once per seed
include_base = true           # with named variants: also run the base recipe

[sweep.axes]                  # recipe paths -> lists of values
"optimizer.generator.lr" = [2e-4, 1e-3]

[sweep.variants.no_bn]        # a named variant: a table of overrides
"generator.batchnorm" = false
"discriminator.batchnorm" = false
```

Variants are the named ones (plus ``base``) crossed with the axis combinations; every
variant's recipe is built and validated before anything runs. Each variant's id names its
folder under the sweep's directory, so a name must be a plain id (:data:`VARIANT_NAME`),
and every planned run directory is checked to lie strictly inside that directory.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..core.errors import RecipeError
from ..core.params import param
from ..core.registry import Registry
from ..core.structuring import key_path, structure_params
from ..recipe import Recipe, apply_overrides, apply_settings, build_recipe, load_raw
from ..recipe.model import SEED_LIMIT

#: What a variant id may look like: it names a folder under the sweep's directory, so it
#: is one plain, readable path component (never ``/``, ``..``, ``~``, a leading ``.`` or
#: ``-``, a space or a control character), and short enough for any file system.
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=,+-]*")
MAX_VARIANT_NAME = 100
_RULE = (f"a variant name is letters, digits and _ . = , + -, starts with a letter or digit, "
         f"has no '..' and at most {MAX_VARIANT_NAME} characters")


def variant_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a variant (and so a run directory), or None if it can."""
    if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or ".." in name \
            or len(name) > MAX_VARIANT_NAME:
        return f"not a safe variant name: {_RULE}"
    return None


@attrs.frozen
class SweepParams:
    """The ``[sweep]`` table's own keys."""

    mode: str = param("grid", "how axes combine: 'grid' (every combination) or 'zip'",
                      validator=attrs.validators.in_(["grid", "zip"]))
    seeds: tuple[int, ...] | None = param(
        None, "seeds each variant runs with; unset: run.seed",
        validator=attrs.validators.optional(attrs.validators.deep_iterable(
            [attrs.validators.ge(0), attrs.validators.lt(SEED_LIMIT)])))
    include_base: bool = param(True, "with named variants, also run the unchanged base")


@attrs.frozen
class PlannedRun:
    """One run of the sweep: a variant at one seed."""

    variant: str
    seed: int
    overrides: dict[str, Any]
    recipe: Recipe
    run_dir: Path
    #: The named variant (``[sweep.variants.<name>]`` or ``base``) it belongs to, if any.
    name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.variant} (seed {self.seed})"


@attrs.frozen
class SweepPlan:
    """Every run of a sweep, in order, and the base it varies."""

    source: Path
    out: Path
    params: SweepParams
    base: Recipe
    runs: list[PlannedRun]
    #: ``[sweep.axes]``: recipe path -> the values it takes (``params.mode`` combines them).
    axes: dict[str, list[Any]] = attrs.field(factory=dict)

    @property
    def variants(self) -> list[str]:
        """Variant ids in order, without repeats."""
        return list(dict.fromkeys(r.variant for r in self.runs))


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, list | tuple):
        return "-".join(_format_value(v) for v in value)
    return str(value)


def variant_id(overrides: Mapping[str, Any]) -> str:
    """A stable, readable id: ``lr=0.001_batchnorm=false``. Equal tokens (the same lr for G
    and D) appear once; a short key that is ambiguous gets its parent table too."""
    def key(path: str, depth: int) -> str:
        return ".".join(path.split(".")[-depth:])

    tokens: list[str] = []
    shorts: dict[str, set[str]] = {}
    for path, value in overrides.items():
        shorts.setdefault(key(path, 1), set()).add(_format_value(value))
    for path, value in overrides.items():
        depth = 1 if len(shorts[key(path, 1)]) == 1 else 2
        token = f"{key(path, depth)}={_format_value(value)}"
        if token not in tokens:
            tokens.append(token)
    return _safe_id("_".join(tokens) or "base")


def _safe_id(text: str) -> str:
    """``text`` made a valid variant name (:func:`variant_name_problem`). Odd characters
    become ``-`` as they always have, so the ids (and run directories) of existing sweeps
    stay the same; an id still invalid (a ``..``, a leading ``.`` or ``-``, too long) is
    repaired and gets a digest of ``text``, so that distinct ids stay distinct."""
    safe = re.sub(r"[^A-Za-z0-9._=+-]", "-", text)
    if variant_name_problem(safe) is None:
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    safe = re.sub(r"^[^A-Za-z0-9]+", "", re.sub(r"\.{2,}", ".", safe))
    return f"{safe[:MAX_VARIANT_NAME - 9]}-{digest}" if safe else digest


def _axis_combinations(axes: Mapping[str, list[Any]], mode: str) -> list[dict[str, Any]]:
    if not axes:
        return [{}]
    paths = list(axes)
    if mode == "zip":
        return [dict(zip(paths, values, strict=True)) for values in zip(*axes.values(),
                                                                          strict=True)]
    return [dict(zip(paths, values, strict=True))
            for values in itertools.product(*axes.values())]


def _check_axes(axes: Any, mode: str) -> list[tuple[str, str]]:
    problems = []
    if not isinstance(axes, Mapping):
        return [("$.sweep.axes", "expected a table of recipe paths -> lists of values")]
    lengths = set()
    for path, values in axes.items():
        if not isinstance(values, list) or not values:
            problems.append((f"$.sweep.axes.{path}", "expected a non-empty list of values"))
        else:
            lengths.add(len(values))
    if mode == "zip" and len(lengths) > 1:
        problems.append(("$.sweep.axes", f"mode = 'zip' needs lists of one length, got "
                         f"{sorted(lengths)}"))
    return problems


def plan_sweep(path: str | Path, registry: Registry, overrides: Iterable[str] = (),
               out: Path | None = None) -> SweepPlan:
    """Expand and validate the sweep in ``path``; every problem of every variant is
    reported at once, each prefixed with its variant's name."""
    path = Path(path)
    raw = apply_overrides(load_raw(path), overrides)
    sweep = raw.pop("sweep", None)
    if not isinstance(sweep, Mapping):
        raise RecipeError.single("$.sweep", "no [sweep] table: this recipe has no variants "
                                 "(run it with 'ganforge run')", source=str(path))
    sweep = dict(sweep)
    axes = sweep.pop("axes", {})
    named = sweep.pop("variants", {})
    params = structure_params(SweepParams, sweep, "$.sweep")
    problems = _check_axes(axes, params.mode)
    if not isinstance(named, Mapping) or not all(isinstance(v, Mapping) for v in named.values()):
        problems.append(("$.sweep.variants", "expected [sweep.variants.<name>] tables"))
        named = {}
    problems += _check_variant_names(named)
    repeated = sorted({s for s in params.seeds or () if params.seeds.count(s) > 1})
    if repeated:
        problems.append(("$.sweep.seeds", f"seeds listed more than once: {repeated}"))
    if not axes and not named:
        problems.append(("$.sweep", "needs [sweep.axes] or [sweep.variants.<name>]"))
    if problems:
        raise RecipeError(problems, source=str(path))
    base = build_recipe(raw, registry, source=str(path))
    seeds = list(params.seeds) if params.seeds else [base.run.seed]
    families: list[tuple[str | None, dict[str, Any]]] = []
    if not named or params.include_base:
        families.append((None if not named else "base", {}))
    families += [(name, dict(values)) for name, values in named.items()]
    out = out or Path(base.run.out or Path("runs") / path.stem)
    runs: list[PlannedRun] = []
    problems = []
    for (name, fixed), combo in itertools.product(families, _axis_combinations(axes,
                                                                               params.mode)):
        changes = {**fixed, **combo}
        axis_part = variant_id(combo) if combo else ""
        vid = "_".join(p for p in (name, axis_part) if p) or "base"
        for seed in seeds:
            table = copy.deepcopy(raw)
            try:
                # One variant's overrides are one set, like one command line's --set:
                # `use` changes first, then values, whatever order the table lists them in.
                apply_settings(table, [*((dotted.split("."), value, f"variant {vid!r}")
                                         for dotted, value in changes.items()),
                                       (["run", "seed"], seed, "seeds")])
                recipe = build_recipe(table, registry, source=str(path))
            except RecipeError as exc:
                problems += [(f"variant {vid!r}: {p}", m) for p, m in exc.problems]
                break
            runs.append(PlannedRun(vid, seed, changes, recipe, out / vid / f"seed-{seed}",
                                   name))
    if problems:
        raise RecipeError(problems, source=str(path))
    _check_run_dirs(runs, out, str(path))
    return SweepPlan(path, out, params, base, runs, dict(axes))


def _check_variant_names(named: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One problem per named variant whose name cannot be a run directory's name."""
    problems = []
    for name in named:
        problem = variant_name_problem(name)
        if problem:
            problems.append((key_path("$.sweep.variants", name), problem))
    return problems


def _check_run_dirs(runs: list[PlannedRun], out: Path, source: str) -> None:
    """Refuse a plan in which two runs share a run directory, or one lies anywhere but
    strictly inside ``out``: the runner writes into (and may clean) every run directory,
    so none may be outside the sweep's own folder, for instance through a symlink."""
    root = out.resolve()
    taken: dict[tuple[str, int], str] = {}
    for run in runs:
        # Case-folded: on a case-insensitive file system 'A' and 'a' are one folder.
        key = (run.variant.casefold(), run.seed)
        if key in taken:
            first = taken[key]
            what = (f"two variants have the id {first!r}" if first == run.variant else
                    f"variants {first!r} and {run.variant!r} differ only in case")
            raise RecipeError.single("$.sweep", f"{what}, so they would share a run "
                                     "directory; rename the named variants", source=source)
        taken[key] = run.variant
        resolved = run.run_dir.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise RecipeError.single("$.sweep", f"variant {run.variant!r}: run directory "
                                     f"{str(resolved)!r} is not inside the sweep directory "
                                     f"{str(root)!r}", source=source)


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def differences(base: Recipe, variant: Recipe) -> dict[str, tuple[Any, Any]]:
    """Resolved values that differ from the base: ``path -> (base value, variant value)``
    (the run seed is left out: seeds are listed on their own)."""
    a, b = flatten(base.to_dict()), flatten(variant.to_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k != "run.seed"}
