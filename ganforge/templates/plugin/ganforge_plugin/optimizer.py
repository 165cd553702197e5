"""SGD with momentum, as a ganforge optimizer."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from ganforge import Optimizer, param


class SGDOptimizer(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and weight decay."""

    @attrs.frozen
    class Params:
        """SGD's hyper-parameters."""

        lr: float = param(0.01, "learning rate", validator=attrs.validators.gt(0.0))
        momentum: float = param(0.5, "momentum, in [0, 1)",
                                validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])
        nesterov: bool = param(False, "Nesterov momentum (when momentum > 0)")
        weight_decay: float = param(0.0, "L2 penalty", validator=attrs.validators.ge(0.0))

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.SGD(parameters, lr=p.lr, momentum=p.momentum,
                               nesterov=p.nesterov and p.momentum > 0,
                               weight_decay=p.weight_decay)
