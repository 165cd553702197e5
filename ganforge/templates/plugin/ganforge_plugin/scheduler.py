"""Step decay of the learning rate, after an optional linear warm-up."""

from __future__ import annotations

import attrs
from ganforge import Scheduler, param


class StepDecay(Scheduler):
    """Multiply the learning rate by ``gamma`` every ``every`` steps. A pure function of the
    step, so a resumed run continues on exactly the same learning rates."""

    @attrs.frozen
    class Params:
        """Period and factor of the decay, and the warm-up."""

        every: int = param(1000, "steps between decays", validator=attrs.validators.gt(0))
        gamma: float = param(0.5, "factor applied at each decay, in (0, 1]",
                             validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)])
        warmup: int = param(0, "steps of linear warm-up from 0 (0: none)",
                            validator=attrs.validators.ge(0))

    def factor(self, step: int, total: int) -> float:
        p = self.params
        warm = min(1.0, step / p.warmup) if p.warmup > 0 else 1.0
        return warm * p.gamma ** ((step - 1) // p.every)
