"""The ResNet networks keep the contract of ganforge's plugin kit (ganforge.testing), both
unconditional and conditional."""

from __future__ import annotations

import pytest

from ganforge.testing import check_component, check_plugin, plugin_registry

#: Small networks: the checks are about the contract, not mimicry's widths. 16 is the
#: smallest width every size builds (48, 64 and 128 pixels halve it four times).
SMALL = {"generator": {"latent_dim": 16, "width": 16}, "discriminator": {"width": 16}}


@pytest.fixture(scope="module")
def registry():
    """The installed plugins, with this plugin loaded whether or not it is installed."""
    return plugin_registry("resnet", "ganforge_resnet.plugin")


def test_every_resnet_component_keeps_the_contract(registry) -> None:
    reports = check_plugin("resnet", registry=registry, sizes=(16, 32), channels=(3,),
                           params={(kind, "resnet"): params for kind, params in SMALL.items()})
    assert sorted((r.kind, r.name) for r in reports) == [("discriminator", "resnet:resnet"),
                                                         ("generator", "resnet:resnet")]
    for report in reports:
        # 16 pixels is refused (32, 48, 64 and 128 only). The kit's checks run at 3x32x32
        # to stay quick; every size, with 1 and 3 channels, is built and run in
        # test_resnet_networks.py.
        assert report.details["specs"] == "3x32x32"
        assert {"compile", "channels_last", "bf16", "gradients", "training"} <= set(
            report.passed)
        assert "labels" in report.skipped  # unconditional: called without labels


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_conditional_resnet_keeps_the_contract(registry, kind: str) -> None:
    # compile is checked on the unconditional networks above (the conditional ones add an
    # embedding lookup, or a matmul for class weights): skipped here for time.
    report = check_component(kind, "resnet:resnet", registry=registry,
                             params={**SMALL[kind], "conditional": True}, sizes=(16, 32),
                             channels=(3,), skip=("compile",))
    assert {"labels", "gradients", "training"} <= set(report.passed)
    assert report.details["specs"] == "3x32x32 (3 classes)"
