"""Short display names for a sweep's variants, and wrapping them to fit a width.

A variant's id names its run directory and never changes (``loss.use=hinge_norm=spectral``:
existing sweeps resume by it). The display name is for people: ``loss=hinge norm=spectral``
-- the named variant (if any), then ``key=value`` for each axis, where the key is the
path's last part without the ``.use`` that picks a component (``regularizers.penalty.use``
-> ``penalty``), qualified by its table (``generator`` -> ``G``, ``discriminator`` -> ``D``)
only where two axes would otherwise share a key and take different values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .plan import SweepPlan
from .plan import _format_value as format_value

#: Tables abbreviated when a key needs its table to be told apart.
_TABLE_ABBREVIATIONS = {"generator": "G", "discriminator": "D"}


def _parts(path: str) -> list[str]:
    parts = path.split(".")
    return parts[:-1] if len(parts) > 1 and parts[-1] == "use" else parts


def short_key(path: str, depth: int = 1) -> str:
    """``regularizers.penalty.use`` -> ``penalty``; ``discriminator.norm`` at depth 2 ->
    ``D.norm``."""
    parts = _parts(path)[-depth:]
    return ".".join(_TABLE_ABBREVIATIONS.get(p, p) if i < len(parts) - 1 else p
                    for i, p in enumerate(parts))


def short_keys(paths: Sequence[str], rows: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:
    """A short key per path. Paths that share a short key get as much of their table path
    as tells them apart, unless they take the same value in every row of ``rows`` (zipped
    axes such as G's and D's learning rate), where one shared key says it all."""
    keys: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(short_key(path), []).append(path)
    for key, group in groups.items():
        same = all(len({format_value(row.get(p)) for p in group}) == 1 for row in rows)
        if len(group) == 1 or (rows and same):
            keys.update({p: key for p in group})
            continue
        depth = 2
        while len({short_key(p, depth) for p in group}) < len(group) and \
                depth < max(len(_parts(p)) for p in group):
            depth += 1
        keys.update({p: short_key(p, depth) for p in group})
    return keys


def variant_coordinates(plan: SweepPlan) -> dict[str, dict[str, str]]:
    """Per variant id: its place in the sweep, ``{axis: value}`` with values formatted;
    named variants have a ``variant`` axis holding their name."""
    named = any(run.name for run in plan.runs)
    coordinates: dict[str, dict[str, str]] = {}
    for run in plan.runs:
        if run.variant in coordinates:
            continue
        place = {"variant": run.name or "base"} if named else {}
        place.update({path: format_value(run.overrides[path]) for path in plan.axes
                      if path in run.overrides})
        coordinates[run.variant] = place
    return coordinates


def display_names(plan: SweepPlan) -> dict[str, str]:
    """Per variant id, its short display name (unique; the id itself where the short
    names would clash or say nothing)."""
    coordinates = variant_coordinates(plan)
    paths = [p for p in plan.axes]
    keys = short_keys(paths, [{p: c.get(p) for p in paths} for c in coordinates.values()])
    names: dict[str, str] = {}
    for variant, place in coordinates.items():
        tokens = [place["variant"]] if "variant" in place else []
        for path in paths:
            if path in place:
                token = f"{keys[path]}={place[path]}"
                if token not in tokens:
                    tokens.append(token)
        names[variant] = " ".join(tokens) or variant
    if len(set(names.values())) < len(names):
        return {variant: variant for variant in names}
    return names


def axis_labels(plan: SweepPlan) -> dict[str, str]:
    """The short key of each axis of ``variant_coordinates`` (``variant`` stays itself)."""
    coordinates = variant_coordinates(plan)
    paths = list(plan.axes)
    keys = short_keys(paths, [{p: c.get(p) for p in paths} for c in coordinates.values()])
    return {"variant": "variant", **keys}


def wrap_label(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` broken into lines no wider than ``width`` (as ``measure`` tells widths):
    at spaces where it can, inside a word (after ``=``, ``_``, ``-``, ``.`` or ``,`` if
    there is one) where a word alone is too wide. Every character is kept: the lines,
    joined by spaces where they were broken at one, give back ``text``."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while measure(word) > width and len(word) > 1:
            cut = _cut(word, width, measure)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current or not lines:
        lines.append(current)
    return lines


def _cut(word: str, width: float, measure: Callable[[str], float]) -> int:
    """Where to break ``word``: the most characters that fit (at least one), moved back to
    just after a separator when one lies in the second half of them."""
    fit = 1
    while fit < len(word) and measure(word[:fit + 1]) <= width:
        fit += 1
    separators = [i + 1 for i, c in enumerate(word[:fit]) if c in "=_-.,"]
    return separators[-1] if separators and separators[-1] > fit // 2 and \
        separators[-1] < len(word) else fit
