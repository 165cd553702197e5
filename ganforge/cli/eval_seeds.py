"""``ganforge eval --seeds 0,1,2``: each metric scored once per evaluation seed (the
metric's ``seed`` param: the generated latents and the real-image selection), reported as
mean ± standard deviation (n - 1) over the seeds, as mimicry reports its scores. The
scoring is :func:`ganforge.api.evaluate.evaluate`'s; here the option is parsed and the
summaries printed."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..api.evaluate import MAX_SEEDS
from ..core.errors import UsageError
from ..evaluation.results import aggregate_seeds as aggregate
from ..sampling import check_seed

__all__ = ["MAX_SEEDS", "aggregate", "parse_seeds", "print_aggregate"]


def parse_seeds(text: str) -> list[int]:
    """The seeds of ``--seeds 0,1,2`` (at least 2, distinct), or one UsageError line."""
    seeds = []
    for part in text.split(","):
        try:
            seeds.append(check_seed(int(part.strip()), "--seeds"))
        except ValueError:
            raise UsageError(f"--seeds {text!r}: expected comma-separated integers such as "
                             "0,1,2") from None
    if not 2 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give 2 to {MAX_SEEDS} different seeds (a "
                         "standard deviation needs two)")
    return seeds


def print_aggregate(summaries: list[dict[str, Any]], title: str, as_json: bool) -> None:
    """One JSON object per metric (with its per-seed values), or a table of mean ± std."""
    console = Console()
    if as_json:
        for entry in summaries:
            console.print_json(json.dumps(entry))
        return
    out = Table(title=f"{title}: mean ± std (n - 1) over evaluation seeds")
    for column in ("metric", "mean ± std", "seeds", "per seed", "fake", "real", "extractor"):
        out.add_column(column)
    for entry in summaries:
        p = entry["per_seed"][0]["protocol"]
        out.add_row(entry["metric"], f"{entry['value']:.4f} ± {entry['std']:.4f}",
                    ",".join(str(s) for s in entry["seeds"]),
                    " ".join(f"{s['value']:.4f}" for s in entry["per_seed"]),
                    str(p["n_fake"]), str(p["n_real"] or "-"), p["extractor"])
    console.print(out)
