"""Built-in optimizers."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from ..interfaces import Optimizer
from ..params import param

_positive = attrs.validators.gt(0.0)
_non_negative = attrs.validators.ge(0.0)


def _betas(_instance: Any, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"'{attribute.name}' must both lie in [0, 1): {list(value)}")


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba); the defaults are the DCGAN paper's lr 2e-4 and beta1 0.5."""

    @attrs.frozen
    class Params:
        """Adam's hyper-parameters."""

        lr: float = param(2e-4, "learning rate", validator=_positive)
        betas: tuple[float, float] = param((0.5, 0.999), "beta1 and beta2", validator=_betas)
        eps: float = param(1e-8, "term added to the denominator", validator=_positive)
        weight_decay: float = param(0.0, "L2 penalty", validator=_non_negative)
        implementation: str = param("auto", "'auto' (fused kernels where torch has them), "
                                    "'fused', 'foreach' or 'loop'",
                                    validator=attrs.validators.in_(
                                        ["auto", "fused", "foreach", "loop"]))

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        choice = p.implementation
        if choice == "auto":
            choice = "fused" if device.type in ("cuda", "cpu") else "foreach"
        kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True},
                  "loop": {"foreach": False}}[choice]
        return torch.optim.Adam(parameters, lr=p.lr, betas=p.betas, eps=p.eps,
                                weight_decay=p.weight_decay, **kwargs)
