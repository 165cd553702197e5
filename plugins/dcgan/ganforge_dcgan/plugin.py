"""Entry point of the DCGAN plugin: registers the networks and answers ``ganforge check``."""

from __future__ import annotations

from typing import Any

import torch

from ganforge import Registry, hookimpl


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register ``dcgan`` for both the generator and the discriminator kind."""
    from .discriminator import DCGANDiscriminator
    from .generator import DCGANGenerator

    registry.register("generator", "dcgan", DCGANGenerator)
    registry.register("discriminator", "dcgan", DCGANDiscriminator)


@hookimpl
def ganforge_check(generator: Any, discriminator: Any) -> list[Any]:
    """Audit any generator/discriminator pair against the paper's guidelines."""
    from .audit import audit

    z = generator.sample_latent(2, torch.Generator().manual_seed(0), device="cpu")
    with torch.no_grad():
        was_training = generator.training
        generator.eval()
        images = generator(z)
        generator.train(was_training)
    return audit(generator, discriminator, z, images)
