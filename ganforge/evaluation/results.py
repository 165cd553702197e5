"""What an evaluation returns: one metric's score with its protocol
(:class:`MetricResult`), a metric scored class by class (:class:`ClassResults`), and the
warning for a score that used fewer images than the protocol it claims, and the mean ± std
of scores over several evaluation seeds (:func:`aggregate_seeds`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import attrs


def protocol_warnings(label: str, claimed: int | None, n_fake: int,
                      n_real: int | None) -> tuple[str, ...]:
    """A warning when a score used fewer images than the protocol it claims to follow
    (``protocol_images``): such numbers are not comparable with published ones (FID is
    biased upwards at small sample sizes)."""
    if claimed is None:
        return ()
    short = [f"{n} {what}" for n, what in ((n_fake, "generated"), (n_real, "real"))
             if n is not None and n < claimed]
    if not short:
        return ()
    return (f"{label}: scored with {' and '.join(short)} images, fewer than the {claimed} of "
            f"the protocol it follows (protocol_images): not comparable with published "
            f"numbers",)



@attrs.frozen
class MetricResult:
    """One score and the protocol that produced it."""

    label: str
    metric: str
    value: float
    higher_is_better: bool
    extra: dict[str, float]
    protocol: dict[str, Any]
    #: The real-image statistics used: ``{"key": cache key digest, "roots": {param: absolute
    #: path}, "content": {param: fingerprint}}``; None for a metric without real images.
    reference: dict[str, Any] | None = None
    #: Why the score is not comparable with the protocol it claims (fewer images), if so.
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        """``fid 23.4125 (10000 fake vs 10000 real images, <extractor>, <dataset>,
        reference <key> at <root>)``."""
        p = self.protocol
        extra = "".join(f" {k} {v:.4g}" for k, v in self.extra.items())
        real = f" vs {p['n_real']} real" if p.get("n_real") else ""
        reference = ""
        if self.reference is not None:
            roots = "".join(f" at {root}" for root in self.reference["roots"].values())
            reference = f", reference {self.reference['key']}{roots}"
        return (f"{self.label} {self.value:.4f}{extra} ({p['n_fake']} fake{real} images, "
                f"{p['extractor']}, resize {p['resize']}, dataset {p['dataset']['use']}"
                f"{reference})")


@attrs.frozen
class ClassResults:
    """One metric scored class by class (:meth:`Evaluator.run_per_class`): each class's
    :class:`MetricResult` (its protocol has ``per_class``, ``class`` and its image counts),
    and ``value``, their mean: the intra-class score (intra-class FID for ``fid``)."""

    label: str
    metric: str
    value: float
    higher_is_better: bool
    per_class: tuple[MetricResult, ...]
    protocol: dict[str, Any]

    @property
    def values(self) -> list[float]:
        """Each class's value, class 0 first."""
        return [r.value for r in self.per_class]

    def summary(self) -> str:
        """``intra-class fid 23.4125, mean of 10 classes (178 to 183 fake and real images
        per class, <extractor>, <dataset>)``."""
        p = self.protocol
        counts = p["n_real"]
        low, high = min(counts), max(counts)
        each = f"{low}" if low == high else f"{low} to {high}"
        return (f"intra-class {self.label} {self.value:.4f}, mean of {p['classes']} classes "
                f"({each} fake and real images per class, {p['extractor']}, resize "
                f"{p['resize']}, dataset {p['dataset']['use']})")


def aggregate_seeds(runs: Sequence[tuple[int, Sequence[MetricResult]]]) -> list[dict[str, Any]]:
    """One summary per metric of ``runs`` ((seed, MetricResults) per seed): ``value`` (the
    mean), ``std`` (sample standard deviation, n - 1), ``seeds`` and ``per_seed`` (each
    seed's value, extras and protocol)."""
    summaries: dict[str, dict[str, Any]] = {}
    for seed, results in runs:
        for r in results:
            entry = summaries.setdefault(r.label, {"metric": r.label, "per_seed": []})
            entry["per_seed"].append({"seed": seed, "value": r.value, **r.extra,
                                      "protocol": r.protocol})
    for entry in summaries.values():
        values = [s["value"] for s in entry["per_seed"]]
        entry["value"] = statistics.fmean(values)
        entry["std"] = statistics.stdev(values)
        entry["seeds"] = [s["seed"] for s in entry["per_seed"]]
    return list(summaries.values())
