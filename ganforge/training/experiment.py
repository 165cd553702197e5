"""The :class:`Experiment`: the assembled parts of one experiment on one device, and the
label checks every assembly runs (:func:`check_labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.errors import CheckpointError, UsageError
from ..core.interfaces import (
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
from ..io.checkpoint_schema import CheckpointContents
from ..recipe import Recipe
from .ema import GeneratorEMA
from .speed import SpeedSettings


@attrs.define
class Experiment:
    """The assembled parts of one experiment on one device: plain modules (DDP and
    ``torch.compile`` wrap them in the training step, never here); a part a command did not
    ask for is None."""

    #: The recipe it was assembled from (``None`` for an exported folder: see ``recipe``).
    recipe_or_none: Recipe | None = attrs.field(alias="recipe")
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
    #: Where it was loaded from (a checkpoint or an exported folder); None when assembled.
    source: Path | None = None

    @property
    def recipe(self) -> Recipe:
        """The recipe it was assembled from. An exported folder holds the generator alone,
        without a recipe: asking for it is one :class:`UsageError` line."""
        if self.recipe_or_none is None:
            raise UsageError(f"{self.source}: an exported folder holds the generator alone, "
                             "not its recipe; use the run's checkpoint for what needs one")
        return self.recipe_or_none

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
