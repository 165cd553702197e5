"""Stop signals: the first asks for a clean stop, a second aborts, and under torchrun the
launcher's forwarded copy of a Ctrl-C is not taken for a second one."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ganforge.training.distributed import DistributedContext
from ganforge.training.stopping import StopRequest, StopVote, under_launcher


def deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # the handler runs between bytecodes of the main thread


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_requests_a_stop_and_a_second_aborts(sig: int) -> None:
    with StopRequest(forwarded_window_s=0.0) as stop:
        assert not stop.requested
        deliver(sig)
        assert stop.requested and stop.signum == sig
        with pytest.raises(KeyboardInterrupt):
            deliver(sig)


def test_a_repeat_inside_the_forwarding_window_is_the_same_request() -> None:
    with StopRequest(forwarded_window_s=30.0) as stop:
        deliver(signal.SIGINT)
        deliver(signal.SIGINT)  # torchrun forwarding the terminal's Ctrl-C
        assert stop.signum == signal.SIGINT


def test_handlers_are_restored_afterwards() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_window_applies_only_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert not under_launcher()
    with StopRequest() as stop, pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)
        deliver(signal.SIGINT)
    assert stop.signum == signal.SIGINT
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    with StopRequest() as stop:
        deliver(signal.SIGINT)
        deliver(signal.SIGINT)
    assert stop.signum == signal.SIGINT


def test_agreed_signal_replaces_the_local_one() -> None:
    stop = StopRequest()
    stop.request(signal.SIGINT)
    stop.request(signal.SIGTERM)  # later requests keep the first signal
    assert stop.signum == signal.SIGINT
    stop.agree(signal.SIGTERM)  # but all ranks report the one they agreed on
    assert stop.signum == signal.SIGTERM


def test_one_process_vote_decides_at_once() -> None:
    vote = StopVote(DistributedContext())
    assert vote.vote(None) == 0
    assert vote.vote(signal.SIGTERM) == signal.SIGTERM
    assert vote.finish() == 0
