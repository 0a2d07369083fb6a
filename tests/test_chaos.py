"""Acknowledged means durable, on a small scale (``benchmarks/chaos.py`` runs the same harness at
full size and prints the figures): clients add and judge through a real ``serve-api`` while it
is SIGKILLed and restarted, PostgreSQL is restarted, and the LM fails; then the database is read
back against every answer the clients got.
"""

from __future__ import annotations

import sys

import pytest

from personae.testing.chaos import ChaosPlan, chaos_run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_no_acknowledged_write_is_lost_or_doubled_across_kills_and_restarts(database: str, tmp_path,
                                                                             request) -> None:
    if database == "postgresql":
        request.getfixturevalue("postgres_server")   # skips where this machine has no PostgreSQL
    plan = ChaosPlan(seconds=6.0, clients=3, kills=1, db_restarts=1, lm_fault_rate=0.1, seed=1)
    outcome = chaos_run(database, plan, tmp_path)
    found = outcome.findings()
    assert outcome.kills == 1 and len(found.recovery) == 1
    assert outcome.db_restarts == (1 if database == "postgresql" else 0)
    assert found.acked > 20 and found.found == found.acked
    assert (found.lost, found.doubled, found.phantom) == (0, 0, 0)
    assert (found.answers_500, found.without_retry_after, found.hangs) == (0, 0, 0), found.statuses
    assert found.jobs_left == 0 and found.failed_without_reason == 0 and sum(outcome.jobs.values()) > 0
    assert found.clients_done == found.clients == 3, [log.crashed for log in outcome.logs]
