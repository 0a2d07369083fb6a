"""Faults from an OpenAI-compatible server, through the real LiteLLM path, as the run layer sees them.

Each fault kind of ``fault_server`` must reach :func:`personae.runs.failure_kind` as the right
failure kind, and a batch judged against a flaky server must finish with counts that add up.
"""

from __future__ import annotations

import time
from collections import Counter

import dspy
import pytest

from helpers import record
from personae.lm import default_adapter, get_lm
from personae.pipelines import judge_records
from personae.programs import DefaultJudge, judge_pair
from personae.runs import RetryPolicy
from personae.testing import FAULT_KINDS, Faults, fault_server

TIMEOUT_S = 1.0
SLOW_S = 1.5 * TIMEOUT_S

# The failure kinds each injected fault may be recorded as.
RECORDED_AS: dict[str, set[str]] = {
    "http_500": {"server"},
    "http_429": {"rate_limit"},
    "slow": {"timeout"},
    "non_json": {"parse"},
    "truncated": {"parse"},
    "bad_literal": {"parse"},  # DSPy rejects the Literal while parsing, before judge_pair's ContentError
    "disconnect": {"transport", "server"},  # LiteLLM reports a dropped connection as InternalServerError
}


def _lm(api_base: str, engine: str = "auto") -> dspy.LM:
    return get_lm("openai/fault-model", api_base=api_base, api_key="test-key", timeout=TIMEOUT_S, num_retries=0,
                  cache=False, engine=engine)


@pytest.fixture(scope="module", autouse=True)
def _warm_litellm() -> None:
    """One correct call first, so that the time limits below do not count LiteLLM's first import."""
    with fault_server() as server, dspy.context(adapter=default_adapter()):
        with dspy.context(lm=_lm(server.api_base, "litellm")):
            judge_pair(DefaultJudge(attempts=1), record(0), chosen_first=True)


def _judge_once(faults: Faults, *, max_attempts: int = 1, engine: str = "auto"):
    with fault_server(faults) as server:
        lm = _lm(server.api_base, engine)
        with dspy.context(adapter=default_adapter()):
            outcome = RetryPolicy(max_attempts=max_attempts).attempt(
                lambda: judge_pair(DefaultJudge(attempts=1), record(1), chosen_first=True), lm=lm)
    return outcome, server


@pytest.mark.parametrize(("fault", "expected"), [
    ("http_500", "server"),
    ("http_429", "rate_limit"),
    ("slow", "timeout"),
    ("non_json", "parse"),
    ("truncated", "parse"),
    ("bad_literal", "parse"),
    ("disconnect", "transport"),  # LiteLLM calls it a server error; its cause is a dropped connection
])
@pytest.mark.parametrize("engine", ["http", "litellm"])
def test_each_fault_is_classified(fault: str, expected: str, engine: str) -> None:
    started = time.monotonic()
    outcome, server = _judge_once(Faults(always=True, kinds=(fault,), slow_s=SLOW_S), engine=engine)
    assert not outcome.ok and outcome.value is None and outcome.error
    assert outcome.attempts == 1
    assert server.fault_counts() == Counter({fault: 1})  # one request: no hidden retries in the engine
    assert outcome.kind == expected, outcome.error
    assert time.monotonic() - started < TIMEOUT_S + 2.0


def test_a_correct_answer_is_a_verdict() -> None:
    outcome, server = _judge_once(Faults())
    assert outcome.ok and outcome.value is not None and outcome.value.preferred in ("A", "B")
    assert outcome.attempts == 1 and len(server.served) == 1 and not server.fault_counts()
    assert server.served[0].body["messages"]


def test_first_attempts_fail_then_a_fresh_rollout_succeeds() -> None:
    outcome, server = _judge_once(Faults(first_n=2, kinds=("http_500", "truncated")), max_attempts=3)
    assert outcome.ok and outcome.attempts == 3
    assert [s.attempt for s in server.served] == [0, 1, 2]  # the retries send the same messages
    assert [s.fault is not None for s in server.served] == [True, True, False]
    assert {s.fault for s in server.served[:2]} <= {"http_500", "truncated"}


def test_a_server_that_always_fails_records_the_last_kind() -> None:
    outcome, server = _judge_once(Faults(always=True, kinds=("http_429",)), max_attempts=2)
    assert not outcome.ok and outcome.kind == "rate_limit" and outcome.attempts == 2
    assert server.fault_counts() == Counter({"http_429": 2})


def test_faults_are_chosen_deterministically() -> None:
    plan = Faults(rate=0.2, seed=7)
    picks = [plan.pick("text", f"key{i}", 0) for i in range(2000)]
    assert picks == [Faults(rate=0.2, seed=7).pick("text", f"key{i}", 0) for i in range(2000)]
    assert picks != [Faults(rate=0.2, seed=8).pick("text", f"key{i}", 0) for i in range(2000)]
    assert 0.17 < sum(p is not None for p in picks) / len(picks) < 0.23
    assert set(picks) - {None} == set(FAULT_KINDS)
    assert Faults(always=True, match="needle").pick("hay", "k", 0) is None
    with pytest.raises(ValueError):
        Faults(kinds=("http_418",))


def test_the_server_stops_by_itself() -> None:
    with fault_server() as server:
        assert server.api_base.startswith("http://127.0.0.1:")
    assert not server._thread.is_alive()
    with fault_server(lifetime_s=0.1) as server:
        server._thread.join(timeout=2.0)
        assert not server._thread.is_alive()  # stopped by its own timer, inside the block


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_a_batch_against_a_flaky_server_adds_up(rate: float) -> None:
    records = [record(i) for i in range(40)]
    started = time.monotonic()
    with fault_server(Faults(rate=rate, seed=3, slow_s=SLOW_S)) as server:
        report = judge_records(records, lambda r: DefaultJudge(), lm=_lm(server.api_base), max_attempts=3,
                               concurrency=8)
    elapsed = time.monotonic() - started
    counts, injected = report.counts, server.fault_counts()
    assert report.total == 80 and counts.total == 80 and len(report.rows) == 80
    assert counts.succeeded + counts.failed == counts.total and counts.resumed == 0
    assert sum(counts.failures.values()) == counts.failed == report.unscored
    allowed = set().union(*(RECORDED_AS[kind] for kind in injected))
    assert set(counts.failures) <= allowed, (counts.failures, injected)
    assert sum(row["attempts"] for row in report.rows) == len(server.served)  # every attempt is one request
    assert 0.5 * rate < sum(injected.values()) / len(server.served) < 1.5 * rate
    for row in report.rows:
        assert (row["error"] is None) == (row["kind"] is None) == (row["preferred"] is not None)
        assert 1 <= row["attempts"] <= 3
    if rate > 0.5:
        assert counts.failed > 0  # with 3 attempts at 60%, about a fifth of the items fail
    assert elapsed < 15.0
