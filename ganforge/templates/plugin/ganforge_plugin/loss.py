"""The least-squares GAN loss (Mao et al. 2017) on raw discriminator outputs."""

from __future__ import annotations

import attrs
import torch
from ganforge import Loss, param
from torch import nn


class LeastSquaresLoss(Loss):
    """D pulls real outputs to ``real_target`` and fake ones to ``fake_target``; G pulls its
    fakes to ``real_target``. The labels of a labelled run are passed on to D (the D a loss
    receives drops them for an unconditional network)."""

    @attrs.frozen
    class Params:
        """Targets of the least-squares regression."""

        real_target: float = param(1.0, "target of D on real images (and of G's fakes)")
        fake_target: float = param(0.0, "target of D on generated images")

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        p = self.params
        # real and fake go through D separately, so BatchNorm sees unmixed batches.
        real_term = (discriminator(real, real_labels) - p.real_target).pow(2).mean()
        fake_term = (discriminator(fake, fake_labels) - p.fake_target).pow(2).mean()
        return 0.5 * (real_term + fake_term)

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (discriminator(fake, fake_labels) - self.params.real_target).pow(2).mean()
