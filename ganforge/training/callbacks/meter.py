"""The loss sums a run keeps between log steps, and the extra figures components log."""

from __future__ import annotations

from typing import Any

import torch

#: Checkpoint tensor names of :class:`LossMeter`'s state (``trainer/<name>``).
LOSS_SUMS = ("loss_sum_d", "loss_sum_g", "loss_count")


class LossMeter:
    """Sums of the D and G losses since the last log line, kept on the device (adding
    never synchronises). Checkpointed, so the first mean logged after a resume covers the
    same steps as in an uninterrupted run."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, device=device)
        self.count = 0

    def add(self, loss_d: torch.Tensor, loss_g: torch.Tensor) -> None:
        self.sums += torch.stack((loss_d, loss_g))
        self.count += 1

    def means(self) -> list[float]:
        """The mean D and G losses since the last reset (reads back: a host sync)."""
        return (self.sums / max(self.count, 1)).tolist()

    def reset(self) -> None:
        self.sums.zero_()
        self.count = 0

    def state(self) -> dict[str, torch.Tensor]:
        return {"trainer/loss_sum_d": self.sums[0], "trainer/loss_sum_g": self.sums[1],
                "trainer/loss_count": torch.tensor(self.count, dtype=torch.int64)}

    def load(self, saved: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state` (``trainer/`` section of a checkpoint, prefix removed);
        an older checkpoint without it starts from zero. Raises ``ValueError`` when the
        saved sums are not two finite numbers and a non-negative count."""
        if not saved:
            self.reset()
            return
        sum_d, sum_g, count = (saved.get(name) for name in LOSS_SUMS)
        sums_ok = all(t is not None and t.numel() == 1 and t.is_floating_point()
                      and bool(torch.isfinite(t).all()) for t in (sum_d, sum_g))
        if not sums_ok or count is None or count.numel() != 1 or count.is_floating_point() \
                or int(count) < 0:
            raise ValueError("trainer/ loss sums are not two finite numbers and a "
                             "non-negative count")
        assert sum_d is not None and sum_g is not None
        self.sums = torch.stack([sum_d.float(), sum_g.float()]).to(self.sums.device)
        self.count = int(count)


def component_figures(components: dict[str, Any], taken: dict[str, float]
                      ) -> dict[str, float]:
    """The extra figures every component returns (:meth:`Component.figures`), read back
    as floats; a name the trainer already logs is prefixed with the component's table."""
    figures: dict[str, float] = {}
    for table, component in components.items():
        for name, value in component.figures().items():
            key = name if name not in taken and name not in figures else f"{table}/{name}"
            figures[key] = float(value.detach().float().item() if isinstance(value, torch.Tensor)
                                 else value)
    return figures
