"""``personae judge`` as a task: judging preference records in one or both orders, failures counted as unscored."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
from pydantic import BaseModel
from typing_extensions import override

from personae.data import PreferenceRecord
from personae.errors import DataError
from personae.evaluation.judging import PairItem, PairJudging, record_items
from personae.pipelines.infer import progress_path
from personae.programs import Judge, judge_digest
from personae.runs import (
    Cost,
    Counts,
    Executor,
    Finished,
    Judgment,
    Ledger,
    Progress,
    RunLog,
    RunSpec,
    package_versions,
    run,
)

__all__ = ["JudgeLog", "JudgeReport", "JudgeResults", "JudgeTask", "judge_factory", "judge_records"]


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


class JudgeTask(PairJudging[JudgeLog]):
    """Judge each record, chosen response first and then (with ``both_orders``) second.

    ``judge_for`` gives the judge for a record (the same object for every record when the user
    is fixed; default: the default judge). A judgment whose calls kept failing is a row with
    ``error`` and ``kind`` set and ``correct`` None: it counts and is never correct. The output
    ``OUT`` of a :class:`~personae.runs.RunSpec` is a file: the ledger is ``OUT.progress.jsonl``,
    the run log ``OUT.run.json``.
    """

    name = "judge"

    def __init__(self, records: Sequence[PreferenceRecord],
                 judge_for: Callable[[PreferenceRecord], Judge] | None = None, *, both_orders: bool = True,
                 method: str = "default", config: dict[str, Any] | None = None) -> None:
        self.records, self.judge_for = records, judge_for or judge_factory()
        self.orders = ("chosen", "rejected") if both_orders else ("chosen",)
        self.method, self.config, self.state = method, dict(config or {}), {"method": method}
        self.rows: list[dict[str, Any]] = []

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> JudgeLog:
        return JudgeLog(command="judge", config=self.config, versions=package_versions(), results=JudgeResults())

    @override
    def items(self, stage: str, done: Finished) -> list[PairItem]:
        single: dict[int, tuple[Judge, str]] = {}  # each judge given: its copy that asks once, and its digest
        items: dict[str, list[PairItem]] = {first: [] for first in self.orders}
        for record in self.records:
            given = self.judge_for(record)
            if id(given) not in single:  # the run retries each judgment (max_attempts), not the judge
                once = given.with_attempts(1)
                single[id(given)] = (once, judge_digest(once))
            judge, digest = single[id(given)]
            for item in record_items(record, judge, orders=self.orders, method=self.method, judge_id=digest,
                                     scope=record.user_id or "", user_id=record.user_id,
                                     persona=getattr(judge, "persona", None) or None):
                items[item.first].append(item.with_earlier(f"{item.pair_id}/{self.method}/{digest}/{item.first}"))
        return [item for first in self.orders for item in items[first]]

    @override
    def summary(self, started: JudgeLog, done: Finished) -> JudgeLog:
        self.rows = done.all_rows
        report = JudgeReport(self.rows)
        results = JudgeResults(judgments=report.total, correct=report.correct, unscored=report.unscored,
                               accuracy=report.accuracy if report.total else None)
        return started.model_copy(update={"judgments": report.judgments, "results": results})

    @override
    def paths(self, out: Path) -> tuple[Path, Path]:
        return progress_path(out), Path(f"{out}.run.json")


def judge_records(
    records: Sequence[PreferenceRecord], judge_for: Callable[[PreferenceRecord], Judge], *, lm: dspy.BaseLM,
    both_orders: bool = True, concurrency: int = 1, max_attempts: int = 3, method: str = "default",
    ledger: Ledger | None = None, executor: Executor | None = None, progress: Progress | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None, log_path: str | os.PathLike[str] | None = None,
    config: dict[str, Any] | None = None,
) -> JudgeReport:
    """:class:`JudgeTask` run by :func:`personae.runs.run` in one call. With a ``ledger``, judgments
    it holds are reused and new ones are appended as they are made (each also to ``on_result``).
    With a ``log_path``, the run log (``config`` as its configuration) is kept there."""
    task = JudgeTask(records, judge_for, both_orders=both_orders, method=method, config=config)
    log = run(task, RunSpec(concurrency=concurrency, max_attempts=max_attempts), lm=lm, ledger=ledger,
              log_path=log_path, executor=executor, progress=progress, on_row=on_result)
    return JudgeReport(task.rows, log.cost, log.counts)
