"""Using a checkpoint without its run: rebuild the generator from the embedded recipe."""

from __future__ import annotations

import tomllib
from pathlib import Path

import torch

from ..errors import CheckpointError, RecipeError
from ..interfaces import Generator
from ..recipe import Recipe, build_recipe
from ..registry import Registry
from .build import build_networks
from .checkpoint import load_module_state, read_checkpoint


def load_generator(path: str | Path, registry: Registry,
                   device: torch.device | str = "cpu") -> tuple[Generator, Recipe, int]:
    """The trained generator of a checkpoint, its recipe and its step; needs no data."""
    contents = read_checkpoint(path)
    try:
        recipe = build_recipe(tomllib.loads(contents.recipe_toml), registry, source=str(path))
    except (tomllib.TOMLDecodeError, RecipeError) as exc:
        raise CheckpointError(f"{path}: its embedded recipe does not load here: "
                              f"{str(exc).splitlines()[0]}") from None
    generator, _ = build_networks(recipe, registry)
    load_module_state(generator, contents.section("generator"), "generator", path)
    return generator.to(device).eval(), recipe, contents.step
