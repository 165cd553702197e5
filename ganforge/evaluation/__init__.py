"""Evaluation: metrics (FID, KID, Inception Score), feature extractors, the discriminator
linear probe, latent walks and latent vector arithmetic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluator import EvaluationInterrupted

__all__ = ["EvaluationInterrupted"]


def __getattr__(name: str) -> Any:
    # Lazy: loading the plugins imports the metrics from this package, and must not pull in
    # the evaluator (and the training code it uses) for commands that never evaluate.
    if name == "EvaluationInterrupted":
        from .evaluator import EvaluationInterrupted

        return EvaluationInterrupted
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
