"""Built-in regularizers of the discriminator (the ``regularizer`` kind).

Each is a ``[regularizers.<label>]`` table; the training step adds ``weight * every *
penalty`` to D's loss on every ``every``-th step (lazy regularization, Karras et al. 2020,
StyleGAN2 §B) and logs the unweighted penalty as ``reg/<label>``. Penalties are computed in
fp32 through the plain discriminator (see :class:`ganforge.core.interfaces.Regularizer`).

- ``gradient_penalty`` (Gulrajani et al. 2017, WGAN-GP): ``E (‖∇D(x̂)‖ - 1)²`` on
  interpolates ``x̂ = ε x + (1 - ε) G(z)``.
- ``r1`` (Mescheder et al. 2018): ``½ E ‖∇D(x)‖²`` on real images.
- ``r2`` (Mescheder et al. 2018): ``½ E ‖∇D(G(z))‖²`` on generated images.
- ``weight_clip`` (Arjovsky et al. 2017, WGAN): clamps D's weights to ``[-c, c]`` after
  each D update.

With ``r1``'s ½, ``weight`` is the paper's γ (StyleGAN2's ``r1_gamma``).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from ..core.interfaces import Regularizer, RegularizerParams, Requirement, requires
from ..core.params import param


def adversarial(logits: torch.Tensor) -> torch.Tensor:
    """The adversarial logits of D's output: all of it, or column 0 of a discriminator
    with an auxiliary classifier head (``(N, 1 + classes)``)."""
    return logits if logits.dim() == 1 else logits[:, 0]


def input_gradient(discriminator: nn.Module, images: torch.Tensor,
                   labels: torch.Tensor | None) -> torch.Tensor:
    """``∇_x sum D(x)`` for ``images``, with a graph (the penalty is differentiated again),
    flattened to ``(N, -1)``, in fp32."""
    images = images.detach().float().requires_grad_(True)
    out = adversarial(discriminator(images, labels)).float()
    (grad,) = torch.autograd.grad(out.sum(), images, create_graph=True)
    return grad.flatten(1)


def batchnorm_warning(recipe: Any, name: str) -> Requirement:
    """A warning when the recipe's D uses BatchNorm (``discriminator.norm = "batch"``, or
    a ``batchnorm`` switch left on): a per-sample gradient penalty assumes each logit depends
    on its own image only, which BatchNorm breaks (Gulrajani et al. 2017, §4)."""
    params = recipe["discriminator"].params
    norm = getattr(params, "norm", None)
    uses_bn = norm == "batch" and getattr(params, "batchnorm", True) is not False
    return requires("a discriminator without BatchNorm (discriminator.norm = \"layer\", "
                    "\"spectral\" or \"none\")", not uses_bn,
                    f"{name} penalises each image's gradient, and BatchNorm makes every "
                    "logit depend on the whole batch (Gulrajani et al. 2017, §4)", warn=True)


class NoRegularizer(Regularizer):
    """No regularization: lets a sweep axis swap a regularizer out
    (``"regularizers.penalty.use" = ["none", "r1"]``)."""

    @attrs.frozen
    class Params:
        """No tunable values."""


class GradientPenalty(Regularizer):
    """WGAN-GP's penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"):
    ``E (‖∇D(x̂)‖₂ - target)²`` on random interpolates ``x̂ = ε x + (1 - ε) G(z)``,
    ``ε ~ U(0, 1)`` per image. The paper's λ = 10 is the default weight. Conditional D:
    interpolates carry the real images' labels."""

    @attrs.frozen
    class Params(RegularizerParams):
        """Weight (λ), lazy interval and the gradient norm aimed at."""

        target: float = param(1.0, "the gradient norm the penalty pulls towards (1: "
                              "one-centred, as in WGAN-GP)", validator=attrs.validators.ge(0.0))

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        return [batchnorm_warning(recipe, "the gradient penalty")]

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        n = real.shape[0]
        eps = torch.rand((n, 1, 1, 1), generator=generator, device=real.device)
        mixed = eps * real.detach().float() + (1 - eps) * fake.detach().float()
        grad = input_gradient(discriminator, mixed, real_labels)
        return (grad.norm(dim=1) - self.params.target).pow(2).mean()


class R1Penalty(Regularizer):
    """R1 (Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do actually
    Converge?"): ``½ E ‖∇D(x)‖²`` on real images, so ``weight`` is their γ (the paper's
    default is 10; StyleGAN2-ADA's ``cifar`` configuration uses 0.01)."""

    @attrs.frozen
    class Params(RegularizerParams):
        """Weight (γ) and lazy interval."""

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        return [batchnorm_warning(recipe, "r1")]

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        return 0.5 * input_gradient(discriminator, real, real_labels).pow(2).sum(1).mean()


class R2Penalty(Regularizer):
    """R2 (Mescheder et al. 2018): ``½ E ‖∇D(G(z))‖²`` on generated images."""

    @attrs.frozen
    class Params(RegularizerParams):
        """Weight (γ) and lazy interval."""

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        return [batchnorm_warning(recipe, "r2")]

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        return 0.5 * input_gradient(discriminator, fake, fake_labels).pow(2).sum(1).mean()


class WeightClip(Regularizer):
    """The original WGAN's constraint (Arjovsky, Chintala & Bottou 2017): after every D
    update, each of D's parameters is clamped to ``[-clip, clip]`` (the paper: 0.01, with
    RMSprop at lr 5e-5 and 5 critic updates per G update). It adds no loss term."""

    @attrs.frozen
    class Params:
        """The clipping bound."""

        clip: float = param(0.01, "bound c: weights are clamped to [-c, c]",
                            validator=attrs.validators.gt(0.0))

    def after_update(self, discriminator: nn.Module) -> None:
        with torch.no_grad():
            for parameter in discriminator.parameters():
                parameter.clamp_(-self.params.clip, self.params.clip)
