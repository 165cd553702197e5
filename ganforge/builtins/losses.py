"""Built-in adversarial losses, computed on raw logits."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import Loss


class BCELoss(Loss):
    """The DCGAN objective: minimax binary cross-entropy for D, non-saturating loss for G.

    D minimises ``-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))``; G minimises
    ``-log sigmoid(D(G(z)))``. Both are written with ``softplus`` on logits, which is
    numerically stable and safe under autocast.
    """

    @attrs.frozen
    class Params:
        """The BCE loss has no tunable values."""

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor) -> torch.Tensor:
        # real and fake go through D separately so BatchNorm sees pure batches (paper).
        real_logits = discriminator(real)
        fake_logits = discriminator(fake)
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-discriminator(fake)).mean()
