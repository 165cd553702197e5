"""What a user watches while training: the live bar on a terminal, log lines elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from ganforge.training.progress import TrainingProgress


def rendered(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_bar_shows_no_nan_before_the_first_log_then_the_losses() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=150)
    with TrainingProgress(100, 0, console=console) as progress:
        progress.advance(3)
        progress._progress.refresh()
        before = rendered(console)
        progress.logged(10, {"images_per_s": 812.25, "loss_d": 0.5, "loss_g": 1.25})
        progress._progress.refresh()
    assert "3/100" in before and "D -  G -" in before and "nan" not in before.lower()
    after = rendered(console)
    assert "10/100" in after and "812.2 img/s" in after and "D 0.500  G 1.250" in after


def test_without_a_terminal_each_log_step_is_one_line() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=150)
    with TrainingProgress(100, 0, console=console) as progress:
        progress.advance(5)
        progress.logged(10, {"images_per_s": 50.0, "loss_d": 0.25, "loss_g": 2.0})
        progress.note("checkpoint written")
    lines = rendered(console).splitlines()
    assert lines == ["step 10/100  50.0 img/s  D 0.2500  G 2.0000", "checkpoint written"]


def test_disabled_progress_prints_nothing() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    with TrainingProgress(100, 0, enabled=False, console=console) as progress:
        progress.logged(10, {"images_per_s": 50.0, "loss_d": 0.25, "loss_g": 2.0})
        progress.note("hidden")
    assert rendered(console) == ""
