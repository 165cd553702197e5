"""A checkpoint's embedded recipe must not make ganforge allocate what the file does not
hold (issue 11, item 12): the generator is built on the ``meta`` device and compared
with the header's tensor shapes first, and ``sample`` never builds a discriminator."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w
import torch
from ganforge_dcgan.discriminator import DCGANDiscriminator
from ganforge_dcgan.generator import DCGANGenerator
from typer.testing import CliRunner

from ganforge import load_plugins
from ganforge.cli import app
from ganforge.errors import CheckpointError
from ganforge.recipe import build_recipe
from ganforge.training.assembly import build_generator, build_networks, load_generator
from ganforge.training.checkpoint_checks import check_module_layout
from ganforge.training.checkpoint_format import (
    TensorInfo,
    read_header,
    write_checkpoint,
)
from tests.conftest import TINY_RECIPE

#: With this width the tiny recipe's G would hold 2.2 billion parameters (8.9 GB).
HUGE_WIDTH = 4096


def make_checkpoint(path: Path, recipe_width: int | None = None) -> Path:
    """A checkpoint of the tiny recipe's untrained G (D and optimizers are not needed by
    ``sample``); with ``recipe_width``, its embedded recipe claims another G width."""
    registry = load_plugins().registry
    recipe = build_recipe(tomllib.loads(TINY_RECIPE), registry)
    generator = build_generator(recipe, registry)
    table = recipe.to_dict()
    if recipe_width is not None:
        table["generator"]["width"] = recipe_width
    return write_checkpoint(path, {f"generator/{k}": v for k, v in
                                   generator.state_dict().items()},
                            step=6, recipe_toml=tomli_w.dumps(table), versions={},
                            optimizers={}, trainer={"batches_seen": 6})


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Records the default device of every DCGAN G and D built (call ``.clear()`` on the
    lists after making the checkpoint); a G wider than 1024 built anywhere but on
    ``meta`` fails at once instead of allocating gigabytes."""
    seen: dict[str, list[str]] = {"generator": [], "discriminator": []}
    for kind, cls in (("generator", DCGANGenerator), ("discriminator", DCGANDiscriminator)):
        original = cls.__init__

        def init(self, params, *args, original=original, kind=kind, **kwargs):
            device = torch.empty(0).device.type
            seen[kind].append(device)
            if params.width > 1024 and device != "meta":
                raise AssertionError(f"a {kind} of width {params.width} built on {device}")
            original(self, params, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)
    return seen


def test_huge_recipe_in_a_small_file_is_refused_before_building(
        tmp_path: Path, builds: dict[str, list[str]]) -> None:
    path = make_checkpoint(tmp_path / "step-0000006.safetensors", recipe_width=HUGE_WIDTH)
    assert path.stat().st_size < 100_000
    builds["generator"].clear()
    with pytest.raises(CheckpointError) as info:
        load_generator(path, load_plugins().registry)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert "generator does not match" in message
    assert "main.0.weight: shape [8, 16, 4, 4] in checkpoint, [8, 16384, 4, 4] in model" \
        in message
    assert builds == {"generator": ["meta"], "discriminator": []}


def test_sample_refuses_it_in_one_line(tmp_path: Path, builds: dict[str, list[str]]) -> None:
    path = make_checkpoint(tmp_path / "step-0000006.safetensors", recipe_width=HUGE_WIDTH)
    out = tmp_path / "s.png"
    result = CliRunner().invoke(app, ["sample", str(path), "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "generator does not match" in lines[0], result.output
    assert not out.exists() and builds["discriminator"] == []


def test_a_sound_checkpoint_loads_g_alone(tmp_path: Path,
                                          builds: dict[str, list[str]]) -> None:
    path = make_checkpoint(tmp_path / "step-0000006.safetensors")
    builds["generator"].clear()
    generator, recipe, step = load_generator(path, load_plugins().registry)
    assert step == 6 and recipe["generator"].params.width == 4
    assert builds == {"generator": ["meta", "cpu"], "discriminator": []}
    saved = read_header(path).section("generator")
    assert {k: tuple(v.shape) for k, v in generator.state_dict().items()} == \
        {k: v.shape for k, v in saved.items()}


def test_sample_builds_no_discriminator(tmp_path: Path,
                                        builds: dict[str, list[str]]) -> None:
    path = make_checkpoint(tmp_path / "step-0000006.safetensors")
    out = tmp_path / "s.png"
    result = CliRunner().invoke(app, ["sample", str(path), "--out", str(out), "--n", "4"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and builds["discriminator"] == []


def test_layout_check_names_every_difference() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    entries = {"0.weight": TensorInfo("F32", (4, 2)), "0.bias": TensorInfo("F64", (3,)),
               "1.weight": TensorInfo("F32", (1, 3)), "extra": TensorInfo("U8", (1,))}
    with pytest.raises(CheckpointError) as info:
        check_module_layout(module, entries, "generator", "ck.safetensors")
    message = str(info.value)
    for piece in ("missing 1.bias", "unexpected extra",
                  "0.weight: shape [4, 2] in checkpoint, [3, 2] in model",
                  "0.bias: dtype torch.float64 in checkpoint, torch.float32 in model"):
        assert piece in message, message
    sound = {k: TensorInfo("F32", tuple(v.shape)) for k, v in module.state_dict().items()}
    check_module_layout(module, sound, "generator", "ck.safetensors")


def test_build_networks_is_unchanged_by_the_split() -> None:
    """G built alone has the very weights G has when built with D (same seed, same order),
    and D is still built after G from the same random stream."""
    registry = load_plugins().registry
    recipe = build_recipe(tomllib.loads(TINY_RECIPE), registry)
    alone = build_generator(recipe, registry)
    generator, discriminator = build_networks(recipe, registry)
    assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(),
                                                  generator.state_dict().values(), strict=True))
    _, again = build_networks(recipe, registry)
    assert all(torch.equal(a, b) for a, b in zip(discriminator.state_dict().values(),
                                                  again.state_dict().values(), strict=True))
