"""Judging preference records in one or both orders, with failures counted as unscored."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from pydantic import BaseModel

from personae.data import PreferenceRecord
from personae.errors import DataError
from personae.programs import Judge, Verdict, judge_digest, judge_pair
from personae.runs import (
    Cost,
    Counts,
    Executor,
    Judgment,
    Ledger,
    Outcome,
    Progress,
    RetryPolicy,
    RunLog,
    ThreadExecutor,
    package_versions,
    record_key,
    record_run,
    run_items,
)

__all__ = ["JudgeLog", "JudgeReport", "JudgeResults", "judge_factory", "judge_records"]


class JudgeResults(BaseModel):
    """What ``personae judge`` found: accuracy with unscored judgments counted wrong."""

    judgments: int = 0
    correct: int = 0
    unscored: int = 0
    accuracy: float | None = None


JudgeLog = RunLog[dict[str, Any], JudgeResults]
"""The run log of ``personae judge --out`` (its configuration is the command's options)."""


@dataclass
class JudgeReport:
    """Every judgment (rows of :class:`~personae.runs.Judgment`), and accuracy with unscored ones counted wrong."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    cost: Cost = Cost()
    counts: Counts = field(default_factory=Counts)

    @property
    def judgments(self) -> list[Judgment]:
        """The rows as :class:`~personae.runs.Judgment` objects."""
        return [Judgment.model_validate(row) for row in self.rows]

    def log(self, started: JudgeLog) -> JudgeLog:
        """This report as the finished form of the run log ``started``."""
        results = JudgeResults(judgments=self.total, correct=self.correct, unscored=self.unscored,
                               accuracy=self.accuracy if self.total else None)
        log = started.model_copy(update={"cost": self.cost, "counts": self.counts,
                                         "judgments": self.judgments, "results": results})
        return log.ended("success")

    @property
    def total(self) -> int:
        """How many judgments were made (unscored ones included)."""
        return len(self.rows)

    @property
    def correct(self) -> int:
        """How many judgments picked the chosen response."""
        return sum(1 for r in self.rows if r.get("correct") is True)

    @property
    def unscored(self) -> int:
        """How many judgments failed (they count as wrong)."""
        return sum(1 for r in self.rows if r.get("error") is not None)

    @property
    def accuracy(self) -> float:
        """The share of judgments that were correct, unscored ones counted wrong; NaN when none was
        made."""
        return self.correct / self.total if self.total else float("nan")


def judge_factory(*, persona: str | None = None, column: str | None = None, profile: bool = False,
                  source: str = "") -> Callable[[PreferenceRecord], Judge]:
    """The judge for each record: one persona for all, each record's persona ``column``, each
    record's user ``profile``, or the default judge. A record without the text it needs is a
    DataError naming ``source``, the record and the field."""
    from personae.programs import DefaultJudge, PersonaJudge, ProfileJudge

    if persona:
        fixed: Judge = PersonaJudge(persona, attempts=1)
        return lambda record: fixed
    if column:
        def by_column(record: PreferenceRecord) -> Judge:
            value = record.metadata.get(column) or record.raw.get(column)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"record {record.record_id} has no persona text", source=source, field=column)
            return PersonaJudge(value, attempts=1)

        return by_column
    if profile:
        def by_profile(record: PreferenceRecord) -> Judge:
            if not record.profile:
                raise DataError(f"record {record.record_id} has no user profile", source=source, field="profile")
            return ProfileJudge(record.profile, attempts=1)

        return by_profile
    default: Judge = DefaultJudge(attempts=1)  # the run retries each judgment
    return lambda record: default


def judge_records(
    records: Sequence[PreferenceRecord],
    judge_for: Callable[[PreferenceRecord], Judge],
    *,
    lm: dspy.BaseLM,
    both_orders: bool = True,
    concurrency: int = 1,
    max_attempts: int = 3,
    method: str = "default",
    ledger: Ledger | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    config: dict[str, Any] | None = None,
) -> JudgeReport:
    """Judge each record (chosen shown first, then second when ``both_orders``).

    ``judge_for`` gives the judge for a record (the same object for every record when the
    user is fixed). A judgment whose calls kept failing is a row with ``error`` and ``kind`` set
    and ``correct`` None: it counts in ``total`` and never as correct. With a ``ledger``,
    judgments it holds are reused and new ones are appended as they are made. With a
    ``log_path``, the run log (``config`` as its configuration) is kept there: status ``started``
    at once, then ``success``, or ``interrupted``/``error``.
    """
    items = [(r, True) for r in records] + ([(r, False) for r in records] if both_orders else [])
    judges: dict[str, Judge] = {}
    digests: dict[int, str] = {}  # by judge object: one fixed judge is digested once, not per record
    single: dict[int, tuple[Judge, Judge]] = {}  # each judge given, and its copy that asks once

    def judge_of(record: PreferenceRecord) -> Judge:
        if record.record_id not in judges:
            given = judge_for(record)
            if id(given) not in single:  # the run retries each judgment (max_attempts), not the judge
                single[id(given)] = (given, given.with_attempts(1))
            judges[record.record_id] = single[id(given)][1]
        return judges[record.record_id]

    def key(item: tuple[PreferenceRecord, bool]) -> str:
        record, chosen_first = item
        judge = judge_of(record)
        if id(judge) not in digests:
            digests[id(judge)] = judge_digest(judge)
        first = "chosen" if chosen_first else "rejected"
        return f"{record_key(record)}/{method}/{digests[id(judge)]}/{first}"

    def one(item: tuple[PreferenceRecord, bool]) -> Verdict:
        record, chosen_first = item
        return judge_pair(judge_of(record), record, chosen_first=chosen_first)

    def row(item: tuple[PreferenceRecord, bool], outcome: Outcome[Verdict]) -> dict[str, Any]:
        record, chosen_first = item
        first, second = ("chosen", "rejected") if chosen_first else ("rejected", "chosen")
        persona = getattr(judge_of(record), "persona", None)
        judgment = Judgment.of(outcome, record_id=record.record_id, first=first, second=second, truth="chosen",
                               user_id=record.user_id, method=method, persona=persona or None)
        return judgment.model_dump(mode="json")

    started = JudgeLog(command="judge", config=dict(config or {}), versions=package_versions(),
                       results=JudgeResults())
    reports: list[JudgeReport] = []

    def body() -> JudgeLog:
        run = run_items(one, items, key=key, row=row, ledger=ledger, lm=lm,
                        policy=RetryPolicy(max_attempts=max_attempts), executor=executor or ThreadExecutor(concurrency),
                        progress=progress, label="judge", capture=True, on_row=on_result)
        reports.append(JudgeReport(run.rows, run.cost, run.counts))
        return reports[0].log(started)

    record_run(started, log_path, body)
    return reports[0]
