"""Building the parts of an experiment from a recipe and a registry."""

from __future__ import annotations

import torch

from ..errors import UsageError
from ..interfaces import Discriminator, Generator, ImageSpec
from ..recipe import Recipe
from ..registry import Registry


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; an unavailable CUDA device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"run.device = {name!r} but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"run.device = {name!r} but only {torch.cuda.device_count()} "
                             "CUDA device(s) exist")
    return device


def dataset_image_spec(recipe: Recipe, registry: Registry) -> ImageSpec:
    """The image shape the recipe's dataset yields, from its params alone (no data read)."""
    choice = recipe["dataset"]
    return registry.get("dataset", choice.name).image_spec_for(choice.params)


def build_networks(recipe: Recipe, registry: Registry, spec: ImageSpec | None = None,
                   seed: int | None = None) -> tuple[Generator, Discriminator]:
    """Create G and D for ``spec`` (default: the dataset's), seeding their initial weights."""
    spec = spec or dataset_image_spec(recipe, registry)
    torch.manual_seed(recipe.run.seed if seed is None else seed)
    generator = recipe["generator"].create(registry, image_spec=spec)
    discriminator = recipe["discriminator"].create(registry, image_spec=spec)
    if generator.image_spec != spec:
        raise UsageError(f"generator {recipe['generator'].name!r} builds "
                         f"{generator.image_spec.shape()} images, the dataset gives {spec.shape()}")
    return generator, discriminator
