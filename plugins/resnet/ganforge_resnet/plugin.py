"""Entry point of the ResNet plugin: registers the networks."""

from __future__ import annotations

from ganforge import Registry, hookimpl


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register ``resnet`` for both the generator and the discriminator kind."""
    from .discriminator import ResNetDiscriminator
    from .generator import ResNetGenerator

    registry.register("generator", "resnet", ResNetGenerator)
    registry.register("discriminator", "resnet", ResNetDiscriminator)
