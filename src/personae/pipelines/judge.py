"""Judging preference records in one or both orders, with failures counted as unscored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from personae.data import PreferenceRecord
from personae.lm import Cost, CostMeter
from personae.programs import Judge, Judgment, Outcome, judge_pair, run_batch

__all__ = ["JudgeReport", "judge_records"]


@dataclass
class JudgeReport:
    """Every judgment made, and accuracy with unscored judgments counted as wrong."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    cost: Cost = Cost()

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def correct(self) -> int:
        return sum(1 for r in self.rows if r.get("correct") is True)

    @property
    def unscored(self) -> int:
        return sum(1 for r in self.rows if r.get("error") is not None)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def judge_records(
    records: Sequence[PreferenceRecord],
    judge_for: Callable[[PreferenceRecord], Judge],
    *,
    lm: dspy.BaseLM,
    both_orders: bool = True,
    concurrency: int = 1,
    max_attempts: int = 3,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> JudgeReport:
    """Judge each record (chosen shown first, then second when ``both_orders``).

    ``judge_for`` gives the judge for a record (the same object for every record when the
    user is fixed). A judgment whose calls kept failing is a row with ``error`` set and
    ``correct`` None: it counts in ``total`` and never as correct.
    """
    items = [(r, True) for r in records] + ([(r, False) for r in records] if both_orders else [])
    meter = CostMeter()
    rows: list[dict[str, Any] | None] = [None] * len(items)

    def one(item: tuple[PreferenceRecord, bool]) -> Judgment:
        record, chosen_first = item
        return judge_pair(judge_for(record), record, chosen_first=chosen_first)

    def save(outcome: Outcome[Judgment]) -> None:
        record, chosen_first = items[outcome.index]
        if outcome.value is not None:
            row = {**outcome.value.to_dict(), "user_id": record.user_id, "error": None}
        else:
            row = {"record_id": record.record_id, "user_id": record.user_id, "chosen_first": chosen_first,
                   "preferred": None, "correct": None, "reasoning": None, "error": outcome.error}
        row["attempts"] = outcome.attempts
        rows[outcome.index] = row
        if on_result:
            on_result(row)

    with meter.track():
        run_batch(one, items, lm=lm, concurrency=concurrency, max_attempts=max_attempts, on_result=save)
    return JudgeReport([r for r in rows if r is not None], meter.cost)
