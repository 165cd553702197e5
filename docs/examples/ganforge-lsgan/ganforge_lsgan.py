"""A complete third-party ganforge plugin: the least-squares GAN loss (Mao et al., 2017).

D pushes its raw output towards ``real_target`` on real images and ``fake_target`` on fakes;
G pushes D's output on fakes towards ``real_target``.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import Loss, Registry, hookimpl, param


class LeastSquaresLoss(Loss):
    """Least-squares GAN loss on raw discriminator outputs."""

    @attrs.frozen
    class Params:
        """Targets of the regression."""

        real_target: float = param(1.0, "target of D on real images (and of G's fakes)")
        fake_target: float = param(0.0, "target of D on generated images")

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor) -> torch.Tensor:
        p = self.params
        real_term = (discriminator(real) - p.real_target).pow(2).mean()
        fake_term = (discriminator(fake) - p.fake_target).pow(2).mean()
        return 0.5 * (real_term + fake_term)

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (discriminator(fake) - self.params.real_target).pow(2).mean()


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Called once per process: add the loss under the name recipes use."""
    registry.register("loss", "least_squares", LeastSquaresLoss)


@hookimpl
def ganforge_checkpoint_saved(step: int, path) -> None:
    """Observer hooks are optional; this one just reports checkpoints."""
    print(f"[lsgan] checkpoint at step {step}: {path}")
