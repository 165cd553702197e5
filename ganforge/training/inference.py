"""Using a checkpoint without its run: rebuild the generator from the embedded recipe."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, RecipeError
from ..interfaces import Generator
from ..recipe import Recipe, build_recipe
from ..registry import Registry
from .build import build_generator
from .checkpoint import check_module_layout, load_module_state, read_checkpoint, read_header


def load_generator(path: str | Path, registry: Registry,
                   device: torch.device | str = "cpu") -> tuple[Generator, Recipe, int]:
    """The trained generator of a checkpoint, its recipe and its step; needs no data.

    The discriminator is never built. The generator is first built on the ``meta`` device
    and compared with the tensor shapes in the checkpoint's header: a small file whose
    embedded recipe asks for a huge network is refused before any memory is allocated,
    and before the tensors are read."""
    path = Path(path)
    header = read_header(path)
    try:
        recipe = build_recipe(header.recipe_table, registry, source=str(path))
    except RecipeError as exc:
        raise CheckpointError(f"{path}: its embedded recipe does not load here: "
                              f"{str(exc).splitlines()[0]}") from None
    try:
        shapes_only = build_generator(recipe, registry, device="meta")
    except (NotImplementedError, RuntimeError):
        shapes_only = None  # a plugin's G that cannot be built on meta: checked after building
    if shapes_only is not None:
        check_module_layout(shapes_only, header.section("generator"), "generator", path)
    contents = read_checkpoint(path)
    if contents.recipe_toml != header.recipe_toml:
        raise CheckpointError(f"{path}: file changed while being read (embedded recipe)")
    generator = build_generator(recipe, registry)
    load_module_state(generator, contents.section("generator"), "generator", path)
    return generator.to(device).eval(), recipe, contents.step
