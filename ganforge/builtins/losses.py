"""Built-in adversarial losses, computed on raw logits.

Both take the batch's class labels and pass them on to D (``discriminator(images,
labels)``), so they train conditional networks as well as unconditional ones (the
discriminator they receive drops the labels when D is unconditional)."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import Loss
from ..params import param


def logits(discriminator: nn.Module, images: torch.Tensor,
           labels: torch.Tensor | None) -> torch.Tensor:
    """D's logits for ``images``, with the labels passed on when there are any (so a plain
    ``D(x)`` module, called directly as before labels existed, still works)."""
    return discriminator(images) if labels is None else discriminator(images, labels)


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
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        # real and fake go through D separately so BatchNorm sees pure batches (paper).
        real_logits = logits(discriminator, real, real_labels)
        fake_logits = logits(discriminator, fake, fake_labels)
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return F.softplus(-logits(discriminator, fake, fake_labels)).mean()


class HingeLoss(Loss):
    """The hinge loss (Lim & Ye, 2017; used by SAGAN and BigGAN).

    D minimises ``relu(margin - D(x)) + relu(margin + D(G(z)))``; G minimises ``-D(G(z))``.
    """

    @attrs.frozen
    class Params:
        """Margin of the hinge."""

        margin: float = param(1.0, "hinge margin", validator=attrs.validators.gt(0.0))

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        m = self.params.margin
        return (F.relu(m - logits(discriminator, real, real_labels)).mean()
                + F.relu(m + logits(discriminator, fake, fake_labels)).mean())

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return -logits(discriminator, fake, fake_labels).mean()
