"""The result type of the ``ganforge_check`` hook, shared by every plugin that audits networks."""

from __future__ import annotations

import attrs

__all__ = ["AuditResult"]


@attrs.frozen
class AuditResult:
    """The verdict of one rule on one network, a row of ``ganforge check``'s audit table.

    Attributes:
        network: ``"generator"`` or ``"discriminator"``.
        guideline: Short name of the rule, e.g. ``"batchnorm"``.
        passed: Whether the network follows the rule.
        detail: On failure, what breaks the rule (name offending layers by their
            ``named_modules()`` path); on success, a short confirmation.
        auditor: The ruleset the rule belongs to, e.g. ``"DCGAN guidelines"``; ``ganforge
            check`` prints one table per auditor, titled with it. Empty when unnamed.
    """

    network: str = attrs.field(validator=attrs.validators.in_(("generator", "discriminator")))
    guideline: str
    passed: bool
    detail: str
    auditor: str = ""
