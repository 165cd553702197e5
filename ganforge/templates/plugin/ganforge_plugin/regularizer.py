"""The drift penalty of Progressive GAN: keeps D's logits on real images near zero."""

from __future__ import annotations

import attrs
import torch
from ganforge import Regularizer, param
from ganforge.interfaces import RegularizerParams
from torch import nn


class DriftPenalty(Regularizer):
    """``E[D(x)²]`` on real images (Karras et al. 2018, "Progressive Growing of GANs", their
    ε_drift = 0.001): stops D's outputs drifting far from zero, which a Wasserstein critic
    is otherwise free to do. The training step adds ``weight * every * penalty`` to D's
    loss (the weight and the lazy interval come with :class:`RegularizerParams`)."""

    @attrs.frozen
    class Params(RegularizerParams):
        """Weight, lazy interval and which batch the penalty reads."""

        weight: float = param(0.001, "weight of the penalty in D's loss (the paper: 0.001)",
                              validator=attrs.validators.ge(0.0))
        on_fake: bool = param(False, "also penalise D's logits on the generated batch")

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        # D is the plain network (not compiled, not DDP-wrapped), called with labels like a
        # loss's; the step calls this in fp32 outside autocast. Random numbers, if any, come
        # from ``generator`` (the step's, on the training device: resume stays exact).
        value = discriminator(real, real_labels).float().pow(2).mean()
        if self.params.on_fake:
            value = value + discriminator(fake, fake_labels).float().pow(2).mean()
        return value
