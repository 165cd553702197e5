"""Entry point of the DCGAN plugin: registers the networks and answers ``ganforge check``."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from ganforge import AuditResult, Registry, hookimpl, is_conditional


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
    A conditional network (:func:`ganforge.is_conditional`) is called with class labels,
    ``G(z, y)`` and ``D(images, y)``, the classes 0, 1, ... in turn.

    A DCGAN network built with another normalization than BatchNorm (``norm``, or the old
    ``batchnorm = false``) fails the BatchNorm guideline, its detail led by the setting and
    the normalization used instead of BatchNorm.
    """
    from .audit import audit_discriminator, audit_generator
    from .discriminator import DCGANDiscriminator
    from .generator import DCGANGenerator

    judge_g = isinstance(generator, DCGANGenerator)
    judge_d = isinstance(discriminator, DCGANDiscriminator)
    if not (judge_g or judge_d):
        return None
    z = generator.sample_latent(2, torch.Generator().manual_seed(0), device="cpu")
    labels = torch.arange(z.shape[0]) % max(_classes(generator, discriminator), 1)
    g_labels = labels if is_conditional(generator) else None
    results = audit_generator(generator, z, g_labels) if judge_g else []
    if judge_d:
        with torch.no_grad():
            was_training = generator.training
            generator.eval()
            images = generator(z) if g_labels is None else generator(z, g_labels)
            generator.train(was_training)
        d_labels = labels if is_conditional(discriminator) else None
        results += audit_discriminator(discriminator, images, d_labels)
    networks = {"generator": generator if judge_g else None,
                "discriminator": discriminator if judge_d else None}
    return [_name_the_norm(result, networks[result.network]) for result in results]


#: What each ``norm`` but the paper's puts in place of BatchNorm, as the audit says it.
_INSTEAD = {
    "spectral": "spectral normalization of every layer, no BatchNorm",
    "layer": "layer normalization (GroupNorm, one group) instead of BatchNorm",
    "none": "no normalization",
}


def _name_the_norm(result: AuditResult, network: Any) -> AuditResult:
    """``result``, its detail led by the network's normalization setting when the
    BatchNorm guideline failed because of it (``norm = 'layer': layer normalization ...;
    main.0 ...``)."""
    kind = getattr(network, "effective_norm", "batch")
    if result.guideline != "batchnorm" or result.passed or kind not in _INSTEAD:
        return result
    setting = (f"norm = {network.params.norm!r}" if network.params.norm != "batch"
               else "batchnorm = false")
    return attrs.evolve(result, detail=f"{setting}: {_INSTEAD[kind]}; {result.detail}")


def _classes(generator: Any, discriminator: Any) -> int:
    """How many classes the pair's labels may use: the fewest of the conditional networks'
    ``image_spec.classes`` (both come from one dataset; 0 when neither says)."""
    found = []
    for network in (generator, discriminator):
        classes = getattr(getattr(network, "image_spec", None), "classes", 0)
        if is_conditional(network) and isinstance(classes, int) and classes > 0:
            found.append(classes)
    return min(found, default=0)
