"""Entry point of the DCGAN plugin: registers the networks and answers ``ganforge check``."""

from __future__ import annotations

from typing import Any

import torch

from ganforge import AuditResult, Registry, hookimpl


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register ``dcgan`` for both the generator and the discriminator kind."""
    from .discriminator import DCGANDiscriminator
    from .generator import DCGANGenerator

    registry.register("generator", "dcgan", DCGANGenerator)
    registry.register("discriminator", "dcgan", DCGANDiscriminator)


@hookimpl
def ganforge_check(generator: Any, discriminator: Any) -> list[AuditResult] | None:
    """Audit the DCGAN networks of a pair against the paper's guidelines; others: no verdict.

    A DCGAN discriminator is traced on the generator's images, whatever the generator is.
    """
    from .audit import audit_discriminator, audit_generator
    from .discriminator import DCGANDiscriminator
    from .generator import DCGANGenerator

    judge_g = isinstance(generator, DCGANGenerator)
    judge_d = isinstance(discriminator, DCGANDiscriminator)
    if not (judge_g or judge_d):
        return None
    z = generator.sample_latent(2, torch.Generator().manual_seed(0), device="cpu")
    results = audit_generator(generator, z) if judge_g else []
    if judge_d:
        with torch.no_grad():
            was_training = generator.training
            generator.eval()
            images = generator(z)
            generator.train(was_training)
        results += audit_discriminator(discriminator, images)
    return results
