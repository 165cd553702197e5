"""The evaluation scores a run recorded for one checkpoint, with their protocols.

During training the recipe's ``[eval.metrics.<label>]`` metrics are recorded with the
protocol the evaluation used in the run's ``evaluations.jsonl``, logged as ``eval/<label>``
in its ``metrics.jsonl`` (on the steps they ran), and the best value of the chosen metric
is kept in every checkpoint's trainer metadata. A score belongs to a checkpoint when it was
computed at the checkpoint's step. Its protocol is the recorded one; for a run made before
``evaluations.jsonl`` existed, it is rebuilt from the metric's table in the checkpoint's
recipe (metric, image counts, feature extractor, seed), the dataset it compared with, and
the generator scored (the EMA of G when the run kept one, as the trainer scores it).

``ganforge eval CHECKPOINT`` records its scores beside the checkpoint, in
``<checkpoint>.evaluations.jsonl`` (:func:`record_evaluations`), one JSON object per score
with its protocol; they belong to the checkpoint too (the newest per label).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeGuard

import attrs

from ..core.errors import StorageError
from ..core.structuring import unstructure_params
from ..io.checkpoint_names import EVALUATIONS_SUFFIX
from ..io.checkpoint_schema import CheckpointHeader
from ..io.files import read_jsonl
from ..recipe import Recipe
from ..training.run_dir import RunDirectory


@attrs.frozen
class Score:
    """One recorded score: its label in the recipe, the metric, the value, the step it was
    computed at, its protocol and where it was found."""

    label: str
    metric: str
    value: float
    step: int
    protocol: dict[str, Any]
    source: str
    #: Why the score is not comparable with the protocol it claims (fewer images), if so.
    warnings: tuple[str, ...] = ()


def recorded_scores(checkpoint: Path, header: CheckpointHeader, recipe: Recipe
                    ) -> tuple[list[Score], list[str]]:
    """The scores of ``checkpoint``'s step, and notes (one line each) about what could not
    be read. Looked up in the run directory the checkpoint sits in (its
    ``evaluations.jsonl``, then its ``metrics.jsonl``), then in the checkpoint's own best
    metric."""
    step, notes = header.step, []
    values: dict[str, tuple[float, str]] = {}
    full: dict[str, Score] = {}
    run = _run_directory(checkpoint)
    if run is not None and run.evaluations.is_file():
        try:
            evaluations = read_jsonl(run.evaluations)
        except StorageError as exc:
            evaluations = None
            notes.append(f"scores in {run.evaluations} not read: {exc}")
        for record in evaluations.records if evaluations is not None else []:
            label, value, protocol = (record.get("label"), record.get("value"),
                                      record.get("protocol"))
            if record.get("step") == step and label in recipe.metrics and _number(value) \
                    and isinstance(protocol, dict):
                warnings = record.get("warnings")
                full[label] = Score(label, recipe.metrics[label].short, float(value), step,
                                    protocol, run.evaluations.name,
                                    tuple(str(w) for w in warnings)
                                    if isinstance(warnings, list) else ())
    if run is not None:
        try:
            log = read_jsonl(run.metrics)
        except StorageError as exc:
            log = None
            notes.append(f"scores in {run.metrics} not read: {exc}")
        for record in log.records if log is not None else []:
            if record.get("step") != step:
                continue
            for label in recipe.metrics:
                value = record.get(f"eval/{label}")
                if _number(value):
                    values[label] = (float(value), run.metrics.name)
    beside = evaluations_beside(checkpoint)
    if beside.is_file():
        try:
            recorded = read_jsonl(beside)
        except StorageError as exc:
            recorded = None
            notes.append(f"scores in {beside} not read: {exc}")
        evaluated: dict[str, Score] = {}
        for record in recorded.records if recorded is not None else []:
            label, metric, value, protocol = (record.get("label"), record.get("metric"),
                                              record.get("value"), record.get("protocol"))
            if record.get("step") == step and isinstance(label, str) and \
                    isinstance(metric, str) and _number(value) and isinstance(protocol, dict):
                warnings = record.get("warnings")
                evaluated[label] = Score(label, metric, float(value), step, protocol,
                                         beside.name, tuple(str(w) for w in warnings)
                                         if isinstance(warnings, list) else ())
        extra_scores = list(evaluated.values())
    else:
        extra_scores = []
    best = header.trainer.best
    if best is not None and best.step == step and best.label in recipe.metrics \
            and best.label not in values and math.isfinite(best.value):
        values[best.label] = (best.value, "the checkpoint's best metric")
    scored = "ema" if recipe.ema.enabled else "raw"
    scores = list(full.values())
    for label, (value, source) in values.items():
        if label in full:  # recorded with the protocol the evaluation used
            continue
        choice = recipe.metrics[label]
        protocol = {"metric": choice.name, **unstructure_params(choice.params),
                    "dataset": recipe["dataset"].to_table(), "generator": scored}
        scores.append(Score(label, choice.short, value, step, protocol, source))
    return scores + extra_scores, notes




def evaluations_beside(checkpoint: Path) -> Path:
    """``<checkpoint>.evaluations.jsonl``: the scores ``ganforge eval`` recorded for it."""
    return checkpoint.with_name(checkpoint.name + EVALUATIONS_SUFFIX)


def record_evaluations(checkpoint: Path, step: int, results: list[Any]) -> Path:
    """Append ``results`` (:class:`~ganforge.evaluation.evaluator.MetricResult`) of
    ``checkpoint`` at ``step`` to :func:`evaluations_beside` it, one JSON line each; a file
    that cannot be written is one StorageError line naming it."""
    path = evaluations_beside(checkpoint)
    lines = "".join(json.dumps({"label": r.label, "metric": r.metric, "value": r.value,
                                "step": step, **({"extra": r.extra} if r.extra else {}),
                                "protocol": r.protocol, "warnings": list(r.warnings),
                                "recorded_by": "ganforge eval"}) + "\n" for r in results)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
    except OSError as exc:
        raise StorageError(f"{path}: scores not recorded: {exc.strerror or exc}") from None
    return path


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _run_directory(checkpoint: Path) -> RunDirectory | None:
    """The run directory holding ``checkpoint`` in its checkpoints folder, if it does."""
    run = RunDirectory(checkpoint.resolve().parent.parent)
    if run.checkpoints != checkpoint.resolve().parent or not run.metrics.is_file():
        return None
    return run
