"""Assembly: the one place where a recipe becomes an experiment.

:func:`assemble` builds what a command needs from a recipe and a registry (dataset, G, D,
loss, optimizers, schedules, regularizers, augmentation, EMA) on one device;
:func:`~ganforge.training.experiment_loading.load_experiment` does the same from a
checkpoint and loads its weights. Every command goes through them; nothing else builds
components. The networks themselves are built by :mod:`.building`; the result is an
:class:`~ganforge.training.experiment.Experiment`.

The names that lived here before the split (``Experiment``, ``load_experiment``,
``build_networks``, ...) are re-exported, so ``from ganforge.training.assembly import X``
keeps working.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from ..core.interfaces import Dataset
from ..core.registry import Registry
from ..recipe import Recipe
from .building import (
    build_generator,
    build_networks,
    dataset_image_spec,
    resolve_device,
)
from .ema import GeneratorEMA
from .experiment import Experiment, check_labels
from .speed import SpeedSettings, resolve_speed

#: Every part :func:`assemble` can build.
ALL_PARTS = frozenset({"dataset", "generator", "discriminator", "loss", "optimizers"})


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


# Loading from a checkpoint lives in .experiment_loading, which imports assemble() from
# here: imported last, so the old path ``ganforge.training.assembly.load_experiment`` works.
from .experiment_loading import (  # noqa: E402
    checkpoint_dataset,
    dataset_override_keys,
    embedded_recipe,
    load_checkpoint_generator,
    load_experiment,
    load_generator,
    missing_distributions,
)

__all__ = [
    "ALL_PARTS", "Experiment", "GeneratorEMA", "assemble", "build_generator", "build_networks",
    "check_labels", "checkpoint_dataset", "dataset_image_spec", "dataset_override_keys",
    "embedded_recipe", "load_checkpoint_generator", "load_experiment", "load_generator",
    "missing_distributions",
    "resolve_device",
]
