"""Assembly: the one place where a recipe (or a checkpoint) becomes an experiment.

:func:`assemble` builds what a command needs from a recipe and a registry (dataset, G, D,
loss, optimizers) on one device; :func:`load_experiment` does the same from a checkpoint and
loads its weights. ``run``, ``--resume``, ``sample``, ``eval``, ``probe``, ``interpolate``,
``arithmetic``, ``bench`` and ``ablate`` all go through them; nothing else builds
components.

A checkpoint may come from anyone. So :func:`load_experiment` builds networks on the
``meta`` device first and compares them with the checkpoint's header before allocating
anything, and a dataset taken from a checkpoint's recipe never downloads, can be pointed
elsewhere (``dataset_overrides``) and says which folder it reads.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from ..errors import CheckpointError, DataError, RecipeError, UsageError
from ..interfaces import (
    LABEL_KEYWORDS_FIX,
    Augment,
    Component,
    ComponentState,
    Dataset,
    Discriminator,
    Generator,
    ImageSpec,
    Loss,
    Regularizer,
    Scheduler,
    is_conditional,
    loss_takes_labels,
)
from ..recipe import Recipe, apply_overrides, build_recipe, parse_override
from ..registry import Registry
from .checkpoint_checks import load_module_state
from .checkpoint_format import (
    EMA_PREFIX,
    CheckpointContents,
    read_checkpoint,
    read_header,
)
from .ema import GeneratorEMA
from .size_bounds import check_before_building
from .speed import SpeedSettings, resolve_speed

#: Every part :func:`assemble` can build.
ALL_PARTS = frozenset({"dataset", "generator", "discriminator", "loss", "optimizers"})

#: The device names ganforge accepts, exactly (no spaces, no other backends).
_DEVICE = re.compile(r"auto|cpu|cuda(?::([0-9]{1,9}))?")
_ACCEPTED = "auto, cpu, cuda or cuda:N"
#: ``<distribution> <version>`` as a checkpoint records a plugin's origin.
_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}( [A-Za-z0-9][A-Za-z0-9.+!_-]{0,59})?")


def resolve_device(name: str, option: str = "run.device") -> torch.device:
    """``auto`` picks CUDA when present; ``cpu``, ``cuda`` and ``cuda:N`` are taken as they
    are. Anything else (``mps``, ``"cpu\\n"``), and a CUDA device this machine does not
    have, is one :class:`UsageError` line naming ``option``, the value and what is accepted.
    """
    given = f"{option} {name!r}" if option.startswith("-") else f"{option} = {name!r}"
    match = _DEVICE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise UsageError(f"{given} is not a device ganforge runs on; use {_ACCEPTED}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"{given} but CUDA is not available on this machine; use cpu or "
                         "auto")
    if match.group(1) is None:
        return torch.device("cuda")
    index, count = int(match.group(1)), torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"{given} but only {count} CUDA device(s) exist; use cuda:0 to "
                         f"cuda:{count - 1}, cuda or auto")
    return torch.device("cuda", index)


def dataset_image_spec(recipe: Recipe, registry: Registry) -> ImageSpec:
    """The image shape (and classes) the recipe's dataset yields, from its params alone (no
    data read)."""
    choice = recipe["dataset"]
    return registry.get("dataset", choice.name).image_spec_for(choice.params)


def build_generator(recipe: Recipe, registry: Registry, spec: ImageSpec | None = None,
                    seed: int | None = None, device: torch.device | str | None = None
                    ) -> Generator:
    """Create G alone for ``spec`` (default: the dataset's), seeding its initial weights.

    With ``device="meta"`` no memory is allocated: the network's parameter shapes can be
    compared with a checkpoint and bounded before the real network is built
    (:func:`~ganforge.training.size_bounds.check_before_building`)."""
    spec = spec or dataset_image_spec(recipe, registry)
    torch.manual_seed(recipe.run.seed if seed is None else seed)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        generator = recipe["generator"].create(registry, image_spec=spec)
    if not generator.image_spec.same_images(spec):
        raise UsageError(f"generator {recipe['generator'].name!r} builds "
                         f"{generator.image_spec.shape()} images, the dataset gives {spec.shape()}")
    return generator


def build_networks(recipe: Recipe, registry: Registry, spec: ImageSpec | None = None,
                   seed: int | None = None, device: torch.device | str | None = None
                   ) -> tuple[Generator, Discriminator]:
    """Create G and D for ``spec`` (default: the dataset's), seeding their initial weights
    (``device="meta"``: shapes only, no memory)."""
    spec = spec or dataset_image_spec(recipe, registry)
    generator = build_generator(recipe, registry, spec, seed, device)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        discriminator = recipe["discriminator"].create(registry, image_spec=spec)
    return generator, discriminator


# -- the experiment -------------------------------------------------------------------------

@attrs.define
class Experiment:
    """The assembled parts of one experiment on one device: plain modules (DDP and
    ``torch.compile`` wrap them in the training step, never here); a part a command did not
    ask for is None."""

    recipe: Recipe
    device: torch.device
    speed: SpeedSettings
    dataset: Dataset | None = None
    #: The images (and classes) of the dataset, known without reading it.
    spec: ImageSpec = attrs.field(factory=lambda: ImageSpec(0, 0))
    generator: Generator | None = None
    discriminator: Discriminator | None = None
    loss: Loss | None = None
    #: torch optimizers of ``"generator"`` and ``"discriminator"``.
    optimizers: dict[str, torch.optim.Optimizer] = attrs.field(factory=dict)
    #: The optimizer components that built them (they may hold state of their own).
    optimizer_components: dict[str, Component] = attrs.field(factory=dict)
    #: The learning-rate schedule of each optimizer (``[schedule.<network>]``).
    schedulers: dict[str, Scheduler] = attrs.field(factory=dict)
    #: The learning rates each optimizer was built with, per param group: what the
    #: schedules multiply (from the recipe, so a resumed run has the same).
    base_lrs: dict[str, list[float]] = attrs.field(factory=dict)
    #: Loss scalers of the two updates under ``run.precision = "fp16"``, else empty.
    grad_scalers: dict[str, torch.amp.GradScaler] = attrs.field(factory=dict)
    #: The regularizers of D by label (``[regularizers.<label>]``), with the loss.
    regularizers: dict[str, Regularizer] = attrs.field(factory=dict)
    #: The augmentation of D's inputs (``[augment]``), with the loss.
    augment: Augment | None = None
    #: The moving average of G (``[ema]``), in a training assembly that keeps one.
    ema: GeneratorEMA | None = None
    #: True when ``generator`` holds a checkpoint's EMA weights (:func:`load_experiment`).
    generator_is_ema: bool = False
    #: The step of the checkpoint it was loaded from (0 for a fresh assembly).
    step: int = 0

    @property
    def classes(self) -> int:
        """How many classes the dataset labels its images with (0: unlabelled)."""
        return self.spec.classes

    @property
    def labelled(self) -> bool:
        """True when a training step needs class labels: a conditional network, or a loss
        that uses labels itself (``Loss.needs_labels``), on a dataset with classes."""
        wants = is_conditional(self.generator) or is_conditional(self.discriminator) or (
            self.loss is not None and self.loss.needs_labels)
        return wants and self.classes > 0

    @property
    def sampling_generator(self) -> Generator | None:
        """The generator samples and evaluations use: the EMA when kept, else G."""
        if self.ema is not None:
            return self.ema.average  # type: ignore[return-value]
        return self.generator

    def components(self) -> dict[str, Component]:
        """Every assembled component by its recipe table name."""
        found: dict[str, Any] = {"dataset": self.dataset, "generator": self.generator,
                                 "discriminator": self.discriminator, "loss": self.loss,
                                 "augment": self.augment}
        found.update({f"optimizer.{k}": v for k, v in self.optimizer_components.items()})
        found.update({f"schedule.{k}": v for k, v in self.schedulers.items()})
        found.update({f"regularizers.{k}": v for k, v in self.regularizers.items()})
        return {name: part for name, part in found.items() if part is not None}

    def learning_rates(self, step: int) -> dict[str, float]:
        """Set every optimizer's learning rates for training step ``step`` from its
        schedule; returns the first param group's rate per network."""
        rates = {}
        for name, optimizer in self.optimizers.items():
            schedule = self.schedulers.get(name)
            factor = 1.0 if schedule is None else schedule.factor(step, self.recipe.run.steps)
            for group, base in zip(optimizer.param_groups, self.base_lrs[name], strict=True):
                group["lr"] = base * factor
            rates[name] = float(optimizer.param_groups[0]["lr"])
        return rates

    def on_step(self, step: int) -> None:
        """Tell every component the step about to be trained."""
        for component in self.components().values():
            component.on_step(step)

    def component_states(self) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
        """The state of every stateful component: tensors named ``state/<table>/<name>``,
        and JSON-able values by table."""
        tensors: dict[str, torch.Tensor] = {}
        values: dict[str, dict[str, Any]] = {}
        for table, component in self.components().items():
            state = component.component_state()
            if state is None:
                continue
            tensors.update({f"state/{table}/{k}": v for k, v in state.tensors.items()})
            values[table] = dict(state.values)
        return tensors, values

    def load_component_states(self, contents: CheckpointContents, source: Path | str
                              ) -> list[str]:
        """Give every stateful component its state from ``contents``; returns notes for
        components that have state the checkpoint does not hold (an older checkpoint)."""
        notes = []
        components = self.components()
        saved = set(contents.components) | {k.split("/")[1] for k in contents.tensors
                                            if k.startswith("state/")}
        for table in sorted(saved - set(components)):
            raise CheckpointError(f"{source}: holds state for [{table}], which this "
                                  "experiment does not have")
        for table, component in components.items():
            current = component.component_state()
            if table not in saved:
                if current is not None:
                    notes.append(f"{source}: no saved state for [{table}]; it starts afresh")
                continue
            if current is None:
                raise CheckpointError(f"{source}: holds state for [{table}], but its component "
                                      f"{type(component).__name__} keeps none")
            state = ComponentState(contents.section(f"state/{table}"),
                                   dict(contents.components.get(table, {})))
            try:
                component.load_component_state(state)
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise CheckpointError(f"{source}: state of [{table}] does not load: "
                                      f"{exc}") from None
        return notes


def assemble(recipe: Recipe, registry: Registry, device: torch.device | str = "auto", *,
             parts: Collection[str] = ALL_PARTS, seed: int | None = None,
             dataset: Dataset | None = None, training: bool = True) -> Experiment:
    """Build the ``parts`` of ``recipe`` on ``device``.

    G and D get their initial weights from ``seed`` (default ``run.seed``), always built
    in the same order (G, then D), so a network's initial weights do not depend on which
    parts a command asked for. ``dataset`` passes one already built (e.g. a checkpoint's,
    see :func:`checkpoint_dataset`). ``training`` puts the networks in the memory format of
    the recipe's speed settings (``channels_last``); inference keeps the default layout."""
    unknown = set(parts) - ALL_PARTS
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; known: {sorted(ALL_PARTS)}")
    run = recipe.run
    device = resolve_device(device) if isinstance(device, str) else device
    # Inference (a checkpoint trained with CUDA graphs, sampled on a CPU) uses none of the
    # training speed switches, so none of them is checked.
    speed = resolve_speed(run.precision, run.channels_last, run.compile, device,
                          run.cuda_graphs, run.allow_fp16) if training \
        else SpeedSettings(False, False, False)
    if dataset is None and "dataset" in parts:
        dataset = recipe["dataset"].create(registry)
    spec = dataset.image_spec if dataset is not None else dataset_image_spec(recipe, registry)
    experiment = Experiment(recipe, device, speed, dataset=dataset, spec=spec)
    needs_d = bool({"discriminator", "optimizers", "loss"} & set(parts))
    fmt = speed.memory_format if training else torch.contiguous_format
    if {"generator", "discriminator", "optimizers"} & set(parts):
        generator, discriminator = build_networks(recipe, registry, spec, seed) if needs_d \
            else (build_generator(recipe, registry, spec, seed), None)
        # (torch's stubs omit Module.to's memory_format; it is accepted at run time)
        experiment.generator = generator.to(device, memory_format=fmt)  # type: ignore[call-overload]
        if discriminator is not None:
            experiment.discriminator = discriminator.to(  # type: ignore[call-overload]
                device, memory_format=fmt)
    if "loss" in parts:
        experiment.loss = recipe["loss"].create(registry)
        experiment.augment = recipe["augment"].create(registry)
        experiment.regularizers = {label: choice.create(registry)
                                   for label, choice in recipe.regularizers.items()}
    check_labels(experiment)
    if "optimizers" in parts:
        for name, module in (("generator", experiment.generator),
                             ("discriminator", experiment.discriminator)):
            assert module is not None  # "optimizers" builds both networks
            component = recipe[f"optimizer.{name}"].create(registry)
            experiment.optimizer_components[name] = component
            optimizer = component.build(module.parameters(), device)
            experiment.optimizers[name] = optimizer
            experiment.base_lrs[name] = [float(g["lr"]) for g in optimizer.param_groups]
            experiment.schedulers[name] = recipe[f"schedule.{name}"].create(registry)
            scaler = speed.grad_scaler(device)
            if scaler is not None:
                experiment.grad_scalers[name] = scaler
        if recipe.ema.enabled:
            assert experiment.generator is not None
            # Built like G (same seed, so the same initial weights), then made G's copy.
            average = build_generator(recipe, registry, spec, seed).to(  # type: ignore[call-overload]
                device, memory_format=fmt)
            experiment.ema = GeneratorEMA(average, recipe.ema, run.batch_size)
            experiment.ema.reset(experiment.generator)
    return experiment


def check_labels(experiment: Experiment) -> None:
    """Refuse, in one line naming the recipe tables, a conditional network (or a loss that
    uses labels) on a dataset without classes, a conditional D with a loss that cannot pass
    labels on to it, and an auxiliary classifier head without the loss that reads it (or
    the reverse)."""
    recipe = experiment.recipe
    dataset = recipe["dataset"].name
    for table in ("generator", "discriminator"):
        network = getattr(experiment, table)
        if is_conditional(network) and experiment.classes == 0:
            raise UsageError(f"[{table}] {recipe[table].name!r} is conditional but dataset "
                             f"{dataset!r} has no classes; use a labelled dataset (see "
                             "docs/datasets.md) or an unconditional network")
    loss = experiment.loss
    if loss is not None and is_conditional(experiment.discriminator) \
            and not loss_takes_labels(loss):
        raise UsageError(f"[loss] {recipe['loss'].name!r} does not take labels, so it cannot "
                         f"train the conditional [discriminator] "
                         f"{recipe['discriminator'].name!r}: {LABEL_KEYWORDS_FIX} (or use an "
                         "unconditional discriminator)")
    if loss is not None and loss.needs_labels and experiment.classes == 0:
        raise UsageError(f"[loss] {recipe['loss'].name!r} uses class labels but dataset "
                         f"{dataset!r} has no classes; use a labelled dataset (see "
                         "docs/datasets.md)")
    head = bool(getattr(experiment.discriminator, "aux_classifier", False))
    if loss is not None and experiment.discriminator is not None \
            and head != loss.reads_class_logits:
        d_name, l_name = recipe["discriminator"].name, recipe["loss"].name
        raise UsageError(
            f"[discriminator] {d_name!r} has an auxiliary classifier head, which only a loss "
            f"that reads class logits (aux_classifier) trains, not [loss] {l_name!r}" if head
            else f"[loss] {l_name!r} reads class logits, but [discriminator] {d_name!r} has no "
            "auxiliary classifier head (set discriminator.aux_classifier = true)")


# -- from a checkpoint ---------------------------------------------------------------------

def load_experiment(path: str | Path, registry: Registry, device: torch.device | str = "cpu",
                    *, parts: Collection[str] = ("generator",),
                    dataset_overrides: Sequence[str] = (),
                    note: Callable[[str], None] | None = None,
                    ema: bool = True) -> Experiment:
    """The trained networks among ``parts`` (``generator``, ``discriminator``) of a
    checkpoint, in eval mode, with its recipe and step; ``dataset`` among ``parts`` adds the
    checkpoint's dataset (:func:`checkpoint_dataset`, changed by ``dataset_overrides``;
    ``note`` is told which folder it reads). The generator holds the EMA weights when the
    run kept an average of G (``[ema]``), unless ``ema`` is False (``--no-ema``);
    ``generator_is_ema`` says which it got.

    Networks are built on the ``meta`` device first, compared with the tensor shapes in
    the checkpoint's header and bounded in size (:mod:`.size_bounds`): a small file whose
    embedded recipe asks for a huge network is refused before any memory is allocated and
    before the tensors are read. A network not asked for is never built for real."""
    path = Path(path)
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
    return built


def load_generator(path: str | Path, registry: Registry, device: torch.device | str = "cpu",
                   ema: bool = True) -> tuple[Generator, Recipe, int]:
    """The trained generator of a checkpoint (its EMA when kept, unless ``ema`` is False),
    its recipe and its step (D is never built): :func:`load_experiment` with
    ``parts={"generator"}``."""
    experiment = load_experiment(path, registry, device, parts={"generator"}, ema=ema)
    assert experiment.generator is not None
    return experiment.generator, experiment.recipe, experiment.step


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
