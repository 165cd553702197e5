"""``ganforge_check`` judges DCGAN networks only: another plugin's networks get no verdict."""

from __future__ import annotations

import functools
import types
from pathlib import Path

import attrs
import pytest
import torch
from ganforge_dcgan.audit import AUDITOR, GUIDELINES
from torch import nn
from typer.testing import CliRunner

import ganforge.plugins as plugin_loader
from ganforge import (
    AuditResult,
    Discriminator,
    Generator,
    ImageSpec,
    hookimpl,
    load_plugins,
    param,
    resolve_image_spec,
)
from ganforge.cli import app

SPEC = ImageSpec(channels=3, size=32)

MLP_RECIPE = """
[run]
steps = 2
batch_size = 8
seed = 0
device = "cpu"

[dataset]
use = "synthetic"
count = 16
image_size = 32
channels = 3

[generator]
use = "mlp"

[discriminator]
use = "mlp"
"""


class MLPGenerator(Generator):
    """A two-layer perceptron from z to images: everything the DCGAN guidelines forbid."""

    @attrs.frozen
    class Params:
        """Sizes of the perceptron."""

        latent_dim: int = param(8, "size of z")
        hidden: int = param(16, "hidden units")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        self._spec = resolve_image_spec("generator", None, None, image_spec)
        c, s = self._spec.channels, self._spec.size
        self.net = nn.Sequential(nn.Linear(params.latent_dim, params.hidden), nn.ReLU(),
                                 nn.Linear(params.hidden, c * s * s), nn.Tanh(),
                                 nn.Unflatten(1, (c, s, s)))

    @property
    def latent_dim(self) -> int:
        return self.params.latent_dim

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(device or "cpu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(Discriminator):
    """A two-layer perceptron from images to one raw logit each."""

    @attrs.frozen
    class Params:
        """Sizes of the perceptron."""

        hidden: int = param(16, "hidden units")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        spec = resolve_image_spec("discriminator", None, None, image_spec)
        self.net = nn.Sequential(nn.Flatten(),
                                 nn.Linear(spec.channels * spec.size ** 2, params.hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(params.hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()


def mlp_plugin() -> types.ModuleType:
    module = types.ModuleType("mlp_plugin")

    @hookimpl
    def ganforge_register(registry):
        registry.register("generator", "mlp", MLPGenerator)
        registry.register("discriminator", "mlp", MLPDiscriminator)

    module.ganforge_register = ganforge_register
    return module


@pytest.fixture
def mlp_plugins():
    return load_plugins(extra=[("mlp", mlp_plugin())])


def check(plugins, generator: str, discriminator: str) -> list[AuditResult]:
    registry = plugins.registry
    g = registry.create("generator", generator, {}, image_spec=SPEC)
    d = registry.create("discriminator", discriminator, {}, image_spec=SPEC)
    return plugins.broadcast("ganforge_check", generator=g, discriminator=d)


def test_dcgan_plugin_says_nothing_about_other_networks(mlp_plugins) -> None:
    assert check(mlp_plugins, "mlp", "mlp") == []


def test_dcgan_plugin_judges_only_its_own_half_of_a_mixed_pair(mlp_plugins) -> None:
    [results] = check(mlp_plugins, "dcgan", "mlp")
    assert [r.network for r in results] == ["generator"] * len(GUIDELINES)
    assert all(isinstance(r, AuditResult) and r.auditor == AUDITOR for r in results)
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]

    # The DCGAN discriminator is traced on the MLP generator's images.
    [results] = check(mlp_plugins, "mlp", "dcgan")
    assert [r.network for r in results] == ["discriminator"] * len(GUIDELINES)
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``ganforge check`` on the MLP recipe, with the MLP plugin registered."""
    monkeypatch.setattr(plugin_loader, "load_plugins",
                        functools.partial(plugin_loader.load_plugins,
                                          extra=[("mlp", mlp_plugin())]))
    recipe = tmp_path / "mlp.toml"
    recipe.write_text(MLP_RECIPE, encoding="utf-8")

    def invoke(*overrides: str):
        args = ["check", str(recipe)] + [a for o in overrides for a in ("--set", o)]
        return CliRunner().invoke(app, args)

    return invoke


def test_check_on_mlp_networks_prints_no_audit(cli) -> None:
    result = cli()
    assert result.exit_code == 0, result.output
    assert "recipe ok" in result.output
    assert "no audit for this network: generator 'mlp:mlp'" in result.output
    assert "no audit for this network: discriminator 'mlp:mlp'" in result.output
    assert "FAIL" not in result.output
    assert "DCGAN" not in result.output and "passed" not in result.output


def test_check_on_a_mixed_pair_audits_the_dcgan_half(cli) -> None:
    result = cli("discriminator.use=dcgan")
    assert result.exit_code == 0, result.output
    assert "no audit for this network: generator 'mlp:mlp'" in result.output
    assert "no audit for this network: discriminator" not in result.output
    assert f"{AUDITOR} audit" in result.output
    assert "FAIL" not in result.output and "6 passed, 0 failed" in result.output
