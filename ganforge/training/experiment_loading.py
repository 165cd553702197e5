"""Loading an experiment from a checkpoint: :func:`load_experiment` builds what
:func:`~ganforge.training.assembly.assemble` builds, from the checkpoint's embedded recipe,
and loads its weights.

A checkpoint may come from anyone. So :func:`load_experiment` builds networks on the
``meta`` device first and compares them with the checkpoint's header before allocating
anything, and a dataset taken from a checkpoint's recipe never downloads, can be pointed
elsewhere (``dataset_overrides``) and says which folder it reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError, DataError, RecipeError, UsageError
from ..core.interfaces import Dataset, Generator
from ..core.registry import Registry
from ..io.checkpoint_files import read_checkpoint, read_header
from ..io.checkpoint_schema import EMA_PREFIX
from ..recipe import Recipe, apply_overrides, build_recipe, parse_override
from .assembly import assemble
from .building import build_generator, build_networks, resolve_device
from .checkpoint_checks import load_module_state
from .experiment import Experiment
from .size_bounds import check_before_building
from .speed import SpeedSettings

#: ``<distribution> <version>`` as a checkpoint records a plugin's origin.
_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}( [A-Za-z0-9][A-Za-z0-9.+!_-]{0,59})?")


def load_experiment(path: str | Path, registry: Registry, device: torch.device | str = "cpu",
                    *, parts: Collection[str] = ("generator",),
                    dataset_overrides: Sequence[str] = (),
                    note: Callable[[str], None] | None = None,
                    ema: bool = True) -> Experiment:
    """The trained networks among ``parts`` (``generator``, ``discriminator``) of a
    checkpoint, in eval mode, with its recipe and step; or the generator of a folder
    written by ``ganforge export`` (which holds nothing else, and no recipe). ``dataset``
    among ``parts`` adds the checkpoint's dataset (:func:`checkpoint_dataset`, changed by
    ``dataset_overrides``; ``note`` is told which folder it reads). The generator holds
    the EMA weights when the run kept an average of G (``[ema]``), unless ``ema`` is False
    (``--no-ema``); ``generator_is_ema`` says which it got.

    Networks are built on the ``meta`` device first, compared with the tensor shapes in
    the checkpoint's header and bounded in size (:mod:`.size_bounds`): a small file whose
    embedded recipe asks for a huge network is refused before any memory is allocated and
    before the tensors are read. A network not asked for is never built for real."""
    path = Path(path)
    if path.is_dir():
        return _exported_folder(path, registry, device, parts, ema)
    header = read_header(path)
    recipe = embedded_recipe(path, header.recipe_table, registry, header.versions)
    networks = [n for n in ("generator", "discriminator") if n in parts]
    use_ema = ema and bool(header.section(EMA_PREFIX))
    saved_as = {"generator": EMA_PREFIX if use_ema else "generator",
                "discriminator": "discriminator"}

    def on_meta() -> dict[str, torch.nn.Module]:  # G is built (to seed D as in training)
        built = build_networks(recipe, registry, device="meta") if "discriminator" in \
            networks else (build_generator(recipe, registry, device="meta"),)
        return dict(zip(saved_as, built, strict=False))  # even when only D is asked for
    check_before_building(on_meta, {name: (prefix, header.section(prefix))
                                    for name, prefix in saved_as.items()}, path)
    contents = read_checkpoint(path)
    if contents.recipe_toml != header.recipe_toml:
        raise CheckpointError(f"{path}: file changed while being read (embedded recipe)")
    dataset = None
    if "dataset" in parts:
        recipe, dataset = checkpoint_dataset(recipe, dataset_overrides, registry, path, note)
    built = assemble(recipe, registry, device, dataset=dataset, training=False,
                     parts={"dataset", *networks} if dataset is not None else set(networks))
    for name in networks:
        module = getattr(built, name)
        load_module_state(module, contents.section(saved_as[name]), saved_as[name], path)
        module.eval()
    built.step = contents.step
    built.generator_is_ema = use_ema and "generator" in networks
    built.source = path
    return built


def _exported_folder(folder: Path, registry: Registry, device: torch.device | str,
                     parts: Collection[str], ema: bool) -> Experiment:
    """The generator of a folder written by ``ganforge export`` as an :class:`Experiment`
    (no recipe, no D, no dataset: the folder holds none of them)."""
    from ..sharing.loading import load_exported  # exported folders are sharing's format

    others = sorted(set(parts) - {"generator"})
    if others:
        raise UsageError(f"{folder}: an exported folder holds the generator alone, not "
                         f"{' or '.join(others)}; give the run's checkpoint instead")
    dev = resolve_device(device, "device") if isinstance(device, str) else device
    exported = load_exported(folder, registry, dev, ema=ema)
    generator = exported.generator
    return Experiment(None, dev, SpeedSettings(False, False, False), generator=generator,
                      spec=generator.image_spec, generator_is_ema=exported.is_ema,
                      step=exported.step, source=folder)


def load_checkpoint_generator(path: str | Path, registry: Registry,
                              device: torch.device | str = "cpu", ema: bool = True
                              ) -> tuple[Generator, Recipe, int]:
    """The trained generator of a checkpoint (its EMA when kept, unless ``ema`` is False),
    its recipe and its step (D is never built): :func:`load_experiment` with
    ``parts={"generator"}``. The public way to get a generator is
    ``ganforge.load_generator(source)`` (a checkpoint or an exported folder); this form,
    with its recipe and step, is kept for code that imports it."""
    experiment = load_experiment(path, registry, device, parts={"generator"}, ema=ema)
    assert experiment.generator is not None
    return experiment.generator, experiment.recipe, experiment.step


#: The name this function had before (``ganforge.training.assembly.load_generator``).
load_generator = load_checkpoint_generator


def embedded_recipe(path: Path, table: dict[str, Any], registry: Registry,
                    versions: Mapping[str, str] | None = None) -> Recipe:
    """The recipe embedded in a checkpoint; one that does not load is the checkpoint's
    fault (a component of a plugin that is not installed here, ...). ``versions`` (the
    checkpoint's) name the distribution and version of a plugin that is missing."""
    try:
        return build_recipe(table, registry, source=str(path))
    except RecipeError as exc:
        install = missing_distributions(table, registry, versions or {})
        hint = f"; it was made with {install}" if install else ""
        reason = str(exc).splitlines()[0]
        # build_recipe names the source (the checkpoint) itself: say its path once.
        reason = reason.removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: its embedded recipe does not load here: "
                              f"{reason}{hint}") from None


def missing_distributions(table: Mapping[str, Any], registry: Registry,
                          versions: Mapping[str, str]) -> str:
    """``pip install``-able ``dist==version`` of each plugin a recipe table's qualified
    names use that is not loaded here (from a checkpoint's ``plugin:<name>`` versions)."""
    loaded = registry.plugins()
    wanted = []
    for use in _uses(table):
        plugin = use.rpartition(":")[0]
        made_by = versions.get(f"plugin:{plugin}") if plugin and plugin not in loaded else None
        # The checkpoint is untrusted: only plain distribution names and versions are shown.
        if made_by and _PIN.fullmatch(made_by):
            dist, _, version = made_by.partition(" ")
            pin = f"{dist}=={version}" if version else dist
            if pin not in wanted:
                wanted.append(pin)
    return ", ".join(f"{pin} (pip install {pin})" for pin in wanted)


def _uses(table: Any) -> list[str]:
    """Every ``use`` string in a nested recipe table."""
    if not isinstance(table, Mapping):
        return []
    found = [table["use"]] if isinstance(table.get("use"), str) else []
    for value in table.values():
        found += _uses(value)
    return found


def dataset_override_keys(overrides: Iterable[str]) -> set[str]:
    """The dataset params ``overrides`` change; anything outside ``dataset.`` is refused (a
    checkpoint's networks and settings are used as saved)."""
    keys = set()
    for text in overrides:
        parts, _ = parse_override(text)
        if parts[0] != "dataset" or len(parts) < 2:
            raise UsageError(f"--set {text!r}: only dataset.KEY=VALUE can be set (the "
                             "checkpoint's networks and settings are used as saved)")
        keys.add(parts[1])
    return keys


def checkpoint_dataset(recipe: Recipe, overrides: Sequence[str], registry: Registry,
                       source: Path, note: Callable[[str], None] | None = None
                       ) -> tuple[Recipe, Dataset]:
    """The dataset of a checkpoint's recipe, after ``overrides`` (``dataset.KEY=VALUE``),
    with ``download`` off: a checkpoint's say-so is not the user's consent. Returns the
    recipe with the overrides and the dataset; ``note`` is told which folder it reads
    before it is opened. Missing data is a usage error that says how to point at it."""
    from ..evaluation.reference import resolved_paths

    user_keys = dataset_override_keys(overrides)
    if overrides:
        table = apply_overrides(recipe.to_dict(), overrides)
        recipe = build_recipe(table, registry, source=f"{source} + --set")
    dataset_table = recipe["dataset"].to_table()
    if "download" in dataset_table:
        if dataset_table["download"] and "download" in user_keys:
            raise UsageError("ganforge never downloads a checkpoint's dataset; put the data on "
                             "disk and pass --set dataset.root=PATH")
        dataset_table["download"] = False
    name = dataset_table.pop("use")
    roots = resolved_paths({"use": name, **dataset_table})
    if roots and note is not None:
        given = "--set" if "use" in user_keys or user_keys & roots.keys() else \
            "the checkpoint's recipe"
        note(f"reading dataset {name!r} at {', '.join(roots.values())} (from {given})")
    hint = "pass --set dataset.root=PATH where the data is (it is never downloaded here)"
    for path in roots.values():
        if not Path(path).exists():
            raise UsageError(f"dataset {name!r}: {path} does not exist; {hint}")
    try:
        dataset = registry.create("dataset", name, dataset_table)
    except DataError as exc:
        raise UsageError(f"{str(exc).splitlines()[0]}; {hint}") from None
    return recipe, dataset
