"""Catching divergence without a host synchronisation on every step.

After each backward pass the trainer hands the loss and the gradient norm of the network
to :meth:`DivergenceWatch.observe`, which remembers **on the device** the first step at
which either became non-finite. The trainer reads that back (:meth:`check`) only when it
synchronises anyway: before logging, evaluating, sampling or writing a checkpoint. So a
divergence is reported with its exact step and network, and never reaches a checkpoint.
"""

from __future__ import annotations

import torch

NETWORKS = ("discriminator", "generator")


def gradient_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients (a device scalar; no synchronisation)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, 2.0)


class DivergenceWatch:
    """First non-finite step per network, kept on the device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        """Forget what was seen (after a rollback)."""
        self._first = {n: torch.full((), -1, dtype=torch.int64, device=self.device)
                       for n in NETWORKS}

    def observe(self, network: str, step: int, loss: torch.Tensor,
                grad_norm: torch.Tensor) -> None:
        """Record ``step`` for ``network`` if its loss or gradient norm is not finite."""
        bad = ~(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm.to(loss.device)))
        first = self._first[network]
        self._first[network] = torch.where(bad & (first < 0), step, first)

    def check(self) -> tuple[str, int] | None:
        """``(network, first bad step)`` of the earliest divergence, or None (synchronises)."""
        seen = [(int(self._first[n].item()), n) for n in NETWORKS]
        bad = sorted((step, n) for step, n in seen if step >= 0)
        return (bad[0][1], bad[0][0]) if bad else None
