"""Built-in adversarial losses, computed on raw logits.

Both take the batch's class labels and pass them on to D (``discriminator(images,
labels)``), so they train conditional networks as well as unconditional ones (the
discriminator they receive drops the labels when D is unconditional)."""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ..core.interfaces import Loss, Requirement, requires
from ..core.params import param


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


class WassersteinLoss(Loss):
    """The Wasserstein GAN critic objective (Arjovsky, Chintala & Bottou, 2017).

    D (the critic) minimises ``D(G(z)) - D(x)``; G minimises ``-D(G(z))``. The critic must be
    kept Lipschitz: by weight clipping (the original WGAN, with RMSprop at lr 5e-5) or a
    gradient penalty (WGAN-GP, Gulrajani et al. 2017); both train the critic 5 times per G
    step, which this loss asks for as a warning."""

    @attrs.frozen
    class Params:
        """The Wasserstein loss has no tunable values."""

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        return [requires("run.d_steps >= 5", recipe.run.d_steps >= 5,
                         "WGAN trains the critic 5 times per G step", warn=True)]

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return (logits(discriminator, fake, fake_labels).mean()
                - logits(discriminator, real, real_labels).mean())

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return -logits(discriminator, fake, fake_labels).mean()


class LeastSquaresLoss(Loss):
    """The least-squares GAN loss (Mao et al., 2017), with its a-b-c coding.

    D minimises ``0.5 (D(x) - b)^2 + 0.5 (D(G(z)) - a)^2``; G minimises
    ``0.5 (D(G(z)) - c)^2``. The defaults a = 0, b = c = 1 are the paper's 0-1 coding."""

    @attrs.frozen
    class Params:
        """Targets of the least-squares coding."""

        a: float = param(0.0, "D's target for generated images")
        b: float = param(1.0, "D's target for real images")
        c: float = param(1.0, "the value G wants D to give its images")

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        p = self.params
        real_term = (logits(discriminator, real, real_labels).float() - p.b).pow(2).mean()
        fake_term = (logits(discriminator, fake, fake_labels).float() - p.a).pow(2).mean()
        return 0.5 * (real_term + fake_term)

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (logits(discriminator, fake, fake_labels).float()
                      - self.params.c).pow(2).mean()


class RelativisticLoss(Loss):
    """The relativistic GAN loss (Jolicoeur-Martineau, 2019): D estimates how much more
    realistic real images are than fakes, and G the reverse.

    ``average`` (RaGAN): D minimises ``softplus(-(D(x) - mean D(G(z)))) + softplus(D(G(z))
    - mean D(x))``; G minimises the same with real and fake swapped. ``pairwise`` (RSGAN):
    D minimises ``softplus(-(D(x) - D(G(z))))`` and G ``softplus(-(D(G(z)) - D(x)))``. G's
    objective needs the real batch: the trainer passes the one of the step's last D update."""

    @attrs.frozen
    class Params:
        """Which relativistic comparison."""

        mode: str = param("average", "'average' (RaGAN: against the other batch's mean) or "
                          "'pairwise' (RSGAN: image against image)",
                          validator=attrs.validators.in_(["average", "pairwise"]))

    def _relative(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``-log sigmoid`` of how much more realistic ``a`` is than ``b``, averaged."""
        if self.params.mode == "pairwise":
            return F.softplus(-(a - b)).mean()
        return F.softplus(-(a - b.mean())).mean() + F.softplus(b - a.mean()).mean()

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return self._relative(logits(discriminator, real, real_labels).float(),
                              logits(discriminator, fake, fake_labels).float())

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       real: torch.Tensor | None = None,
                       real_labels: torch.Tensor | None = None,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        if real is None:
            raise ValueError("the relativistic loss needs the real batch (real=)")
        return self._relative(logits(discriminator, fake, fake_labels).float(),
                              logits(discriminator, real, real_labels).float())


class AuxClassifierLoss(Loss):
    """ACGAN's objective (Odena, Olah & Shlens 2017, "Conditional Image Synthesis with
    Auxiliary Classifier GANs"): an adversarial term plus a classification term on D's
    auxiliary classifier head.

    D must be built with the head (``discriminator.aux_classifier = true``): it returns
    ``(N, 1 + classes)``, the adversarial logit and the class logits. D minimises
    ``adv_D + class_weight * (CE(x, y) + CE(G(z, c), c))`` (the fake term only with
    ``classify_fake_in_d``, as in the paper); G minimises ``adv_G + class_weight *
    CE(G(z, c), c)``, where ``adv`` is the ``bce`` (the paper) or ``hinge`` loss and CE is
    cross-entropy with the true class. G is usually conditional and D not: the class
    enters D only through its classification."""

    needs_labels = True
    reads_class_logits = True

    @attrs.frozen
    class Params:
        """Adversarial term and classification weight."""

        adversarial: str = param("bce", "adversarial term: 'bce' (the paper) or 'hinge'",
                                 validator=attrs.validators.in_(["bce", "hinge"]))
        class_weight: float = param(1.0, "weight of the classification terms",
                                    validator=attrs.validators.ge(0.0))
        classify_fake_in_d: bool = param(True, "D also learns to classify generated images "
                                         "(the paper); false: real images only")

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        d_params = recipe["discriminator"].params
        return [requires("a discriminator with an auxiliary classifier head "
                         "(discriminator.aux_classifier = true)",
                         getattr(d_params, "aux_classifier", False) is True,
                         "the classification term reads its class logits")]

    def _split(self, discriminator: nn.Module, images: torch.Tensor,
               labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = logits(discriminator, images, labels)
        if out.dim() != 2 or out.shape[1] < 2:
            raise ValueError("the aux_classifier loss needs a discriminator with an auxiliary "
                             f"classifier head (output (N, 1 + classes)), got {tuple(out.shape)}")
        return out[:, 0].float(), out[:, 1:].float()

    @staticmethod
    def _labels(labels: torch.Tensor | None, which: str) -> torch.Tensor:
        if labels is None:
            raise ValueError(f"the aux_classifier loss needs the {which} images' classes "
                             "(a dataset with classes)")
        return labels

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        p = self.params
        real_y, fake_y = self._labels(real_labels, "real"), self._labels(fake_labels, "fake")
        real_adv, real_cls = self._split(discriminator, real, real_y)
        fake_adv, fake_cls = self._split(discriminator, fake, fake_y)
        if p.adversarial == "bce":
            adv = F.softplus(-real_adv).mean() + F.softplus(fake_adv).mean()
        else:
            adv = F.relu(1 - real_adv).mean() + F.relu(1 + fake_adv).mean()
        cls = F.cross_entropy(real_cls, real_y)
        if p.classify_fake_in_d:
            cls = cls + F.cross_entropy(fake_cls, fake_y)
        return adv + p.class_weight * cls

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        fake_y = self._labels(fake_labels, "fake")
        fake_adv, fake_cls = self._split(discriminator, fake, fake_y)
        adv = F.softplus(-fake_adv).mean() if self.params.adversarial == "bce" \
            else -fake_adv.mean()
        return adv + self.params.class_weight * F.cross_entropy(fake_cls, fake_y)
