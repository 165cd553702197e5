"""Running named checks, collecting their outcomes, and reporting them in one message."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs


class SkipCheck(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a check that does not apply; its message says why."""


class CheckFailed(AssertionError):
    """A check's own failure message (an ``AssertionError``, so pytest shows it as such)."""


@attrs.define
class ContractReport:
    """What :func:`ganforge.testing.check_component` found for one component.

    ``passed`` lists the checks that passed, ``skipped`` and ``failures`` map a check's
    name to the reason it was skipped or to its failure message; ``details`` holds what
    checks found out (``details["specs"]``: the image specs a network was built for).
    """

    kind: str
    name: str
    passed: list[str] = attrs.field(factory=list)
    skipped: dict[str, str] = attrs.field(factory=dict)
    failures: dict[str, str] = attrs.field(factory=dict)
    details: dict[str, str] = attrs.field(factory=dict)

    @property
    def label(self) -> str:
        """``kind 'name'``, the start of every line about this component."""
        return f"{self.kind} {self.name!r}"

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failures

    def lines(self) -> list[str]:
        """One line per failed check: ``<kind> '<name>' [<check>]: <message>``."""
        return [f"{self.label} [{check}]: {' '.join(message.split())}"
                for check, message in self.failures.items()]

    def message(self) -> str:
        """The failure report: a heading, then :meth:`lines`."""
        count = len(self.failures)
        heading = (f"{self.label} failed {count} contract check{'s' if count != 1 else ''}"
                   f" ({', '.join(self.failures)})")
        return "\n".join([heading, *self.lines()])

    def raise_for_failures(self) -> ContractReport:
        """Raise one :class:`AssertionError` listing every failed check; else return self."""
        if self.failures:
            raise CheckFailed(self.message())
        return self


class Runner:
    """Runs checks one by one into a :class:`ContractReport`: a check passes when it
    returns, fails on any exception (an ``AssertionError`` carries its own message; any
    other exception is reported with its type) and is skipped on :class:`SkipCheck` or
    when the caller named it in ``skip``."""

    def __init__(self, report: ContractReport, skip: Iterable[str] = ()) -> None:
        self.report = report
        self.skip = set(skip)

    def run(self, check: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` as ``check``; its result, or None unless it
        passed."""
        if check in self.skip:
            self.report.skipped[check] = "skipped by the caller"
            return None
        try:
            result = function(*args, **kwargs)
        except SkipCheck as reason:
            self.report.skipped[check] = str(reason)
            return None
        except AssertionError as failure:
            self.report.failures[check] = str(failure) or "assertion failed"
            return None
        except Exception as error:  # any crash of the component is a failed check
            self.report.failures[check] = f"raised {one_line(error)}"
            return None
        self.report.passed.append(check)
        return result

    def cannot_run(self, checks: Iterable[str], reason: str) -> None:
        """Record ``checks`` as skipped because an earlier check they need failed."""
        for check in checks:
            if check not in self.report.failures and check not in self.report.passed:
                self.report.skipped.setdefault(check, reason)


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def fail(message: str) -> CheckFailed:
    """A check failure to raise."""
    return CheckFailed(message)
