"""Built-in optimizers."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from ..core.interfaces import Optimizer
from ..core.params import param

_positive = attrs.validators.gt(0.0)
_non_negative = attrs.validators.ge(0.0)


def _betas(_instance: Any, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"'{attribute.name}' must both lie in [0, 1): {list(value)}")


def _implementation_kwargs(choice: str, device: torch.device) -> dict[str, Any]:
    """torch's switches for an ``implementation`` param: ``auto`` is the fused kernels on
    the devices torch has them for (CUDA, CPU), else ``foreach``."""
    if choice == "auto":
        choice = "fused" if device.type in ("cuda", "cpu") else "foreach"
    return {"fused": {"fused": True}, "foreach": {"foreach": True},
            "loop": {"foreach": False}}[choice]


_implementation = attrs.validators.in_(["auto", "fused", "foreach", "loop"])


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
                                    "'fused', 'foreach' or 'loop'", validator=_implementation)

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.Adam(parameters, lr=p.lr, betas=p.betas, eps=p.eps,
                                weight_decay=p.weight_decay,
                                **_implementation_kwargs(p.implementation, device))



class AdamWOptimizer(Optimizer):
    """AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient
    step; the defaults are DCGAN's lr 2e-4 and beta1 0.5, with torch's decay 0.01."""

    @attrs.frozen
    class Params:
        """AdamW's hyper-parameters."""

        lr: float = param(2e-4, "learning rate", validator=_positive)
        betas: tuple[float, float] = param((0.5, 0.999), "beta1 and beta2", validator=_betas)
        eps: float = param(1e-8, "term added to the denominator", validator=_positive)
        weight_decay: float = param(0.01, "decoupled weight decay", validator=_non_negative)
        implementation: str = param("auto", "'auto' (fused kernels where torch has them), "
                                    "'fused', 'foreach' or 'loop'", validator=_implementation)

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.AdamW(parameters, lr=p.lr, betas=p.betas, eps=p.eps,
                                 weight_decay=p.weight_decay,
                                 **_implementation_kwargs(p.implementation, device))


class RMSpropOptimizer(Optimizer):
    """RMSprop, as the original WGAN trains (Arjovsky et al. 2017: lr 5e-5, no momentum)."""

    @attrs.frozen
    class Params:
        """RMSprop's hyper-parameters."""

        lr: float = param(5e-5, "learning rate (WGAN: 5e-5)", validator=_positive)
        alpha: float = param(0.99, "smoothing constant of the squared-gradient average",
                             validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])
        eps: float = param(1e-8, "term added to the denominator", validator=_positive)
        momentum: float = param(0.0, "momentum factor", validator=_non_negative)
        weight_decay: float = param(0.0, "L2 penalty", validator=_non_negative)
        centered: bool = param(False, "normalise by the gradient's estimated variance")

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.RMSprop(parameters, lr=p.lr, alpha=p.alpha, eps=p.eps,
                                   momentum=p.momentum, weight_decay=p.weight_decay,
                                   centered=p.centered, foreach=True)


class SGDOptimizer(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum."""

    @attrs.frozen
    class Params:
        """SGD's hyper-parameters."""

        lr: float = param(1e-2, "learning rate", validator=_positive)
        momentum: float = param(0.0, "momentum factor", validator=_non_negative)
        nesterov: bool = param(False, "Nesterov momentum (needs momentum > 0)")
        weight_decay: float = param(0.0, "L2 penalty", validator=_non_negative)

        def __attrs_post_init__(self) -> None:
            if self.nesterov and self.momentum <= 0:
                raise ValueError("'nesterov' needs momentum > 0")

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.SGD(parameters, lr=p.lr, momentum=p.momentum, nesterov=p.nesterov,
                               weight_decay=p.weight_decay, foreach=True)
