"""Building networks from a recipe: the device a recipe names, the dataset's image shape
without reading data, and G and D with seeded initial weights (optionally on the ``meta``
device, shapes only). Used by :func:`~ganforge.training.assembly.assemble` and by the
checks that bound a checkpoint's networks before they are built.

Datasets, metrics and feature extractors are built here too (:func:`build_dataset`,
:func:`build_metrics`, :func:`build_extractor`, :func:`extractor_builder`), for training,
the Python API and the commands alike: nothing else creates them from the registry.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.errors import RecipeError, UnknownComponentError, UsageError
from ..core.interfaces import Dataset, Discriminator, Generator, ImageSpec, Metric
from ..core.registry import Registry
from ..recipe import Recipe

#: The device names ganforge accepts, exactly (no spaces, no other backends).
_DEVICE = re.compile(r"auto|cpu|cuda(?::([0-9]{1,9}))?")
_ACCEPTED = "auto, cpu, cuda or cuda:N"


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


def dataset_source(source: str | Path, overrides: Sequence[str] | None, registry: Registry
                   ) -> tuple[dict[str, Any], int]:
    """The dataset table ``{"use": name, **params}`` (validated) of a recipe file or a
    dataset name, and the recipe's seed (0 for a name).

    With a recipe, ``overrides`` take recipe paths (``dataset.image_size=64``); with a
    dataset name, that dataset's params (``image_size=64``).
    """
    from ..core.structuring import structure_params, unstructure_params
    from ..recipe import apply_overrides, load_raw

    path = Path(source)
    if path.suffix == ".toml" or path.is_file():
        table = apply_overrides(load_raw(path), list(overrides or []))
        data = dict(table.get("dataset") or {})
        if "use" not in data:
            raise UsageError(f"{source}: the recipe has no [dataset] table with use = \"...\"")
        seed = table.get("run", {}).get("seed", 0)
    else:
        data = {"use": str(source), **apply_overrides({}, list(overrides or []))}
        seed = 0
    name = data.pop("use")
    cls = registry.get("dataset", name)
    params = structure_params(cls.Params, data, "$.dataset")
    return {"use": name, **unstructure_params(params)}, int(seed)


def build_dataset(table: Mapping[str, Any], registry: Registry) -> Dataset:
    """The dataset a table names: ``{"use": name, **params}`` (a recipe's ``[dataset]``)."""
    params = {key: value for key, value in table.items() if key != "use"}
    return registry.create("dataset", table["use"], params)


def build_metrics(metrics: Mapping[str, Any], registry: Registry
                  ) -> dict[str, tuple[str, Metric]]:
    """The metrics by label, each ``(name, metric)`` as the evaluator takes them.

    A value is either ``(name, params table)`` (e.g. ``ganforge eval -m fid``: label and
    name alike) or a recipe's component choice (``recipe.metrics``: its short name and
    params)."""
    built: dict[str, tuple[str, Metric]] = {}
    for label, spec in metrics.items():
        if isinstance(spec, tuple):
            name, params = spec
            built[label] = (name, registry.create("metric", name, dict(params)))
        else:
            built[label] = (spec.short, spec.create(registry))
    return built


def build_extractor(registry: Registry, params: Any, device: torch.device) -> Any:
    """The feature extractor a metric's ``params`` name (``extractor``, with
    :meth:`~ganforge.evaluation.metrics.MetricParams.extractor_table`), loaded on
    ``device``; one line naming the extractor when it is unknown or its params are wrong."""
    try:
        extractor = registry.create("extractor", params.extractor, params.extractor_table())
    except UnknownComponentError as exc:
        raise UsageError(f"feature extractor: {exc}") from None
    except RecipeError as exc:
        raise UsageError(f"feature extractor {params.extractor!r}: "
                         f"{str(exc).splitlines()[0]}") from None
    extractor.load(device)
    return extractor


def extractor_builder(registry: Registry, device: torch.device) -> Callable[[Any], Any]:
    """:func:`build_extractor` bound to ``registry`` and ``device``: what
    :class:`~ganforge.evaluation.evaluator.Evaluator` takes as ``build_extractor``."""
    return functools.partial(build_extractor, registry, device=device)
