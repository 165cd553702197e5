"""The files ``ganforge new plugin NAME`` writes: a ready distribution ``ganforge-NAME``
with one working example component of each kind asked for, plugin settings, an observer
hook, a recipe and contract tests.

The files are real sources shipped as package data, under ``ganforge/templates/plugin/``
(linted and type-checked with ganforge): ``ganforge_plugin/`` becomes ``ganforge_NAME/``,
a ``.in`` suffix is dropped, and :func:`render` fills them in with two plain rules, no
template language:

- ``{{key}}`` is replaced by a value computed here (the names, tables of the README); the
  plugin's name is a checked identifier, so nothing it holds can reach code unescaped;
- a line ending in ``# only: WORD`` is kept, without the marker, when ``WORD`` is a kind
  asked for (or ``dcgan``, when the recipe borrows DCGAN networks), and one ending in
  ``# unless: WORD`` when it is not.

Importing this module imports neither torch nor any plugin.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from importlib.resources.abc import Traversable

#: The kinds a new plugin may start with, in the order they are generated.
KINDS = ("generator", "discriminator", "loss", "optimizer", "scheduler", "regularizer",
         "augment", "dataset", "extractor")
#: What ``--kinds`` defaults to.
DEFAULT_KINDS = ("generator", "discriminator", "loss")
#: Names a plugin cannot take: the core's qualifier and plugin record, the kit's partners.
RESERVED = frozenset({"ganforge", "builtins", "testkit"})
#: A plugin name: a lower-case Python identifier (it names the package ganforge_NAME too).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")

#: kind -> (module, class, registered short name, one-line summary)
COMPONENTS: dict[str, tuple[str, str, str, str]] = {
    "generator": ("generator", "MLPGenerator", "mlp",
                  "an MLP generator for any image size and channel count"),
    "discriminator": ("discriminator", "MLPDiscriminator", "mlp",
                      "an MLP discriminator returning one raw logit per image"),
    "loss": ("loss", "LeastSquaresLoss", "least_squares",
             "the least-squares GAN loss (Mao et al. 2017), labels passed on to D"),
    "optimizer": ("optimizer", "SGDOptimizer", "sgd", "SGD with momentum"),
    "scheduler": ("scheduler", "StepDecay", "step_decay",
                  "step decay of the learning rate, with a linear warm-up"),
    "regularizer": ("regularizer", "DriftPenalty", "drift",
                    "the drift penalty of D's real logits (Karras et al. 2018)"),
    "augment": ("augment", "BrightnessContrast", "brightness_contrast",
                "a differentiable brightness and contrast jitter of D's inputs"),
    "dataset": ("dataset", "StripesDataset", "stripes",
                "procedural striped images, optionally labelled; no files"),
    "extractor": ("extractor", "ColourStatistics", "colour_stats",
                  "per-tile colour statistics as features for metrics; no weights"),
}

#: The template's package folder, renamed to the plugin's package.
TEMPLATE_PACKAGE = "ganforge_plugin"
_MARKER = re.compile(r"\s*# (only|unless): (\w+)$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a plugin (one line), or None when it can."""
    if not NAME_PATTERN.fullmatch(name):
        hint = ""
        if NAME_PATTERN.fullmatch(name.lower().replace("-", "_")):
            hint = f" (try {name.lower().replace('-', '_')!r})"
        return (f"plugin name {name!r} must be a lower-case Python identifier of at most 40 "
                f"characters: a letter, then letters, digits or '_'{hint}")
    if keyword.iskeyword(name) or name in RESERVED:
        return f"plugin name {name!r} is reserved; choose another"
    return None


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``--kinds`` as a tuple in generation order; raises ``ValueError`` with one line."""
    if text is None:
        return DEFAULT_KINDS
    asked = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise ValueError(f"--kinds: unknown kind {unknown[0]!r}; choose from "
                         f"{', '.join(KINDS)}")
    if not asked:
        raise ValueError(f"--kinds: name at least one of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in asked)


def template_root() -> Traversable:
    """The template's folder inside the installed ganforge package."""
    return resources.files("ganforge").joinpath("templates", "plugin")


def fill(text: str, values: dict[str, str], flags: frozenset[str]) -> str:
    """One template file filled in: the marked lines kept or dropped by ``flags``, then
    every ``{{key}}`` replaced from ``values`` (an unknown key is a ``KeyError``: a broken
    template, never silently left in the output)."""
    lines = []
    for line in text.splitlines(keepends=True):
        marker = _MARKER.search(line.rstrip("\n"))
        if marker is not None:
            rule, word = marker.groups()
            if (word in flags) != (rule == "only"):
                continue
            line = line[:marker.start()] + "\n"
        lines.append(line)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], "".join(lines))


def _template_files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """Every template file under ``root`` as (relative path, file), sorted; caches and
    compiled files are no part of the template."""
    found: list[tuple[str, Traversable]] = []
    for item in sorted(root.iterdir(), key=lambda t: t.name):
        if item.name == "__pycache__" or item.name.endswith((".pyc", ".pyo")):
            continue
        relative = f"{prefix}{item.name}"
        if item.is_dir():
            found += _template_files(item, f"{relative}/")
        else:
            found.append((relative, item))
    return found


def _target(relative: str, name: str, package: str, kinds: tuple[str, ...]) -> str | None:
    """Where a template file goes in the new distribution, or None when it is the module
    of a kind not asked for."""
    parts = relative.split("/")
    if parts[0] == TEMPLATE_PACKAGE:
        parts[0] = package
        module = parts[1].removesuffix(".py") if len(parts) == 2 else None
        if module in COMPONENTS and module not in kinds:
            return None
    if parts[-1] == "quick.toml.in":
        parts[-1] = f"{name}_quick.toml.in"
    if parts[-1] == "gitignore.in":
        parts[-1] = ".gitignore.in"
    return "/".join(parts).removesuffix(".in")


def render(name: str, kinds: tuple[str, ...]) -> dict[str, str]:
    """Every file of the new distribution: relative path -> text."""
    package = f"ganforge_{name}"
    chosen = [(kind, *COMPONENTS[kind]) for kind in kinds]
    dcgan = "generator" not in kinds or "discriminator" not in kinds
    first_kind, _, _, first_short, _ = chosen[0]
    values = {
        "name": name, "package": package, "dist": f"ganforge-{name}",
        "title": name.replace("_", " ").title(),
        "summary": "; ".join(info[4] for info in chosen),
        "first_kind": first_kind, "first_short": first_short,
        "kinds_text": ", ".join(kinds),
        "image_size": "32" if dcgan else "16",  # DCGAN builds 32, 64 or 128 pixel images
        "table": "\n".join(f"| {kind} | `{name}:{short}` | {about} |"
                           for kind, _, _, short, about in chosen),
        "layout": "\n".join(f"- `{package}/{module}.py`: `{cls}`, {about}."
                            for _, module, cls, _, about in chosen),
        "dcgan_note": ("\n\nThe recipe trains with the DCGAN networks of the `ganforge-dcgan` "
                       "plugin for the networks this plugin does not provide." if dcgan else ""),
    }
    flags = frozenset(kinds) | ({"dcgan"} if dcgan else set())
    files: dict[str, str] = {}
    for relative, item in _template_files(template_root()):
        target = _target(relative, name, package, kinds)
        if target is not None:
            text = fill(item.read_text(encoding="utf-8"), values, flags)
            if target.endswith(".toml"):  # tables left out leave no run of blank lines
                text = re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"
            files[target] = text
    return files
