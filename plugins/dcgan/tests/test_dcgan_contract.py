"""The DCGAN networks keep the contract of ganforge's plugin kit (ganforge.testing), both
unconditional and conditional."""

from __future__ import annotations

import pytest

from ganforge.testing import check_component, check_plugin, plugin_registry

#: Small networks: the checks are about the contract, not the paper's widths.
SMALL = {"generator": {"latent_dim": 16, "width": 8}, "discriminator": {"width": 8}}


@pytest.fixture(scope="module")
def registry():
    """The installed plugins, with this plugin loaded whether or not it is installed."""
    return plugin_registry("dcgan", "ganforge_dcgan.plugin")


def test_every_dcgan_component_keeps_the_contract(registry) -> None:
    reports = check_plugin("dcgan", registry=registry,
                           params={(kind, "dcgan"): params for kind, params in SMALL.items()})
    assert sorted((r.kind, r.name) for r in reports) == [("discriminator", "dcgan:dcgan"),
                                                         ("generator", "dcgan:dcgan")]
    for report in reports:
        # DCGAN builds 32, 64 (and 128) pixel images of any channel count, nothing else.
        assert report.details["specs"] == ("1x32x32, 3x32x32, 4x32x32, 1x64x64, 3x64x64, "
                                           "4x64x64")
        assert {"compile", "channels_last", "bf16", "training"} <= set(report.passed)
        assert "labels" in report.skipped  # unconditional: called without labels


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_conditional_dcgan_keeps_the_contract(registry, kind: str) -> None:
    report = check_component(kind, "dcgan:dcgan", registry=registry,
                             params={**SMALL[kind], "conditional": True}, sizes=(16, 32),
                             channels=(1, 3))
    assert {"labels", "training"} <= set(report.passed)
    assert report.details["specs"] == "1x32x32, 3x32x32 (3 classes)"


def test_the_auxiliary_classifier_head_keeps_the_contract(registry) -> None:
    """With aux_classifier, D returns (N, 1 + classes); the kit expects that shape and
    trains it with the aux_classifier loss."""
    report = check_component("discriminator", "dcgan:dcgan", registry=registry,
                             params={"width": 8, "aux_classifier": True}, sizes=(32,),
                             channels=(3,))
    assert {"output", "bf16", "compile", "training"} <= set(report.passed)
