"""The run logs of evaluations: configuration, versions, cost, results and every judgment.

Each evaluation writes one :class:`personae.runs.RunLog` (the run layer's one versioned log):
``EvaluationLog`` (``personae evaluate``) holds a :class:`RunConfig` and
:class:`EvaluationResults`, ``PersonaAccuracyLog`` (``personae eval-personas``) a
:class:`PersonaAccuracyConfig` and :class:`PersonaAccuracyResults`. They are written as JSON by
:func:`write_run_log` and read back with :func:`read_run_log` / :func:`read_persona_accuracy_log`.
Each judgment (:class:`personae.runs.Judgment`) keeps the judge's prompt (the chat messages
sent) and its raw output, so a run can be audited without re-running it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from personae.evaluation.judging import pair_stats
from personae.runs import Cost, Judgment, RunLog, read_log, write_log

__all__ = [
    "EvaluationLog",
    "EvaluationResults",
    "MethodSummary",
    "RunConfig",
    "UserRow",
    "SIDES",
    "finite",
    "PersonaAccuracyConfig",
    "PersonaAccuracyLog",
    "PersonaAccuracyResults",
    "PersonaRow",
    "Side",
    "SideSummary",
    "read_persona_accuracy_log",
    "read_run_log",
    "summarise_method",
    "write_run_log",
]


class RunConfig(BaseModel):
    """The resolved configuration of a run."""

    model: str
    methods: list[str]
    fractions: tuple[float, float, float]
    seed: int
    concurrency: int
    max_attempts: int
    data_source: str = ""
    judges_dir: str | None = None
    users: int = 0
    confidence: float = 0.95
    resamples: int = 2000
    extra: dict[str, Any] = Field(default_factory=dict)


class MethodSummary(BaseModel):
    """One method's results: pooled accuracy with its bootstrap interval, and more."""

    method: str
    judgments: int
    correct: int
    unscored: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    mean_user_accuracy: float | None
    users: int
    pairs: int
    pairs_both_scored: int
    orders_agreed: int
    unscored_reasons: dict[str, int] = Field(default_factory=dict)
    cost: Cost = Field(default_factory=Cost)


class UserRow(BaseModel):
    """One user's split sizes (in pairs) and accuracy per method (None: nothing judged)."""

    user_id: str
    n_train: int
    n_val: int
    n_test: int
    accuracy: dict[str, float | None] = Field(default_factory=dict)


class EvaluationResults(BaseModel):
    """What ``personae evaluate`` found: a summary per method and per-user rows."""

    summary: list[MethodSummary] = Field(default_factory=list)
    users: list[UserRow] = Field(default_factory=list)

    def method(self, name: str) -> MethodSummary:
        """The summary of method ``name``."""
        for summary in self.summary:
            if summary.method == name:
                return summary
        raise KeyError(name)


EvaluationLog = RunLog[RunConfig, EvaluationResults]
EvaluationLog.__doc__ = """The run log of ``personae evaluate``: a :class:`personae.runs.RunLog` with a
:class:`RunConfig` and :class:`EvaluationResults` (read back with :func:`read_run_log`)."""


def summarise_method(method: str, judgments: Sequence[Judgment], cost: Cost, *, seed: int, confidence: float,
                     resamples: int) -> tuple[MethodSummary, dict[str, float]]:
    """``method``'s summary from its judgments in ``judgments`` (other methods' are skipped) and its
    accuracy per user; the bootstrap's random stream depends on ``seed`` and the method alone."""
    stats, reasons = pair_stats([j for j in judgments if j.method == method], label=method, seed=seed,
                                confidence=confidence, resamples=resamples)
    summary = MethodSummary(
        method=method, judgments=stats.judgments, correct=stats.correct, unscored=stats.unscored,
        accuracy=finite(stats.accuracy), ci_low=finite(stats.ci_low), ci_high=finite(stats.ci_high),
        mean_user_accuracy=finite(stats.mean_user_accuracy), users=stats.users, pairs=stats.pairs,
        pairs_both_scored=stats.pairs_both_scored, orders_agreed=stats.orders_agreed,
        unscored_reasons=reasons, cost=cost,
    )
    return summary, stats.per_user


def summarise_side(side: Side, judgments: Sequence[Judgment], *, seed: int, confidence: float,
                   resamples: int) -> SideSummary:
    """The summary of ``side``'s persona judgments in ``judgments`` (the other side's are skipped);
    the bootstrap's random stream depends on ``seed`` and the side alone."""
    stats, reasons = pair_stats([j for j in judgments if j.side == side], label=side, seed=seed,
                                confidence=confidence, resamples=resamples)
    return SideSummary(
        side=side, judgments=stats.judgments, correct=stats.correct, unscored=stats.unscored,
        accuracy=finite(stats.accuracy), ci_low=finite(stats.ci_low), ci_high=finite(stats.ci_high),
        records=stats.pairs, records_both_scored=stats.pairs_both_scored, orders_agreed=stats.orders_agreed,
        unscored_reasons=reasons,
    )


def finite(value: float) -> float | None:
    """``value``, or None when it is NaN (JSON has no NaN)."""
    return None if math.isnan(value) else value


def write_run_log(run: Any, path: str | os.PathLike[str]) -> Path:
    """Write a run (an evaluation's or persona-accuracy result, or a run log) as JSON, atomically."""
    log = run if isinstance(run, RunLog) else run.log
    return write_log(log, path)


def read_run_log(path: str | os.PathLike[str]) -> EvaluationLog:
    """Read the run log of an evaluation written by :func:`write_run_log`."""
    return read_log(path, EvaluationLog)


# -- persona accuracy (personae eval-personas) ------------------------------------------------

Side = Literal["chosen", "rejected"]
SIDES: tuple[Side, Side] = ("chosen", "rejected")


class PersonaRow(BaseModel):
    """The two personas of one record and where each came from (``column:<name>`` or ``inferred``).

    ``error`` says why inference failed (the inferred personas are then None).
    """

    record_id: str
    chosen_persona: str | None = None
    rejected_persona: str | None = None
    chosen_source: str = ""
    rejected_source: str = ""
    error: str | None = None
    attempts: int = 0


class SideSummary(BaseModel):
    """Accuracy of one side's personas, with its bootstrap interval and order agreement."""

    side: Side
    judgments: int
    correct: int
    unscored: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    records: int
    records_both_scored: int
    orders_agreed: int
    unscored_reasons: dict[str, int] = Field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        """Of the records scored in both orders, the share where both orders picked the same response."""
        return self.orders_agreed / self.records_both_scored if self.records_both_scored else None


class PersonaAccuracyConfig(BaseModel):
    """The resolved configuration of a persona-accuracy run."""

    judge_model: str
    infer_model: str | None = None
    chosen_column: str | None = None
    rejected_column: str | None = None
    inferred_sides: list[Side] = Field(default_factory=list)
    seed: int = 0
    concurrency: int = 1
    max_attempts: int = 3
    confidence: float = 0.95
    resamples: int = 2000
    data_source: str = ""
    records: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)


class PersonaAccuracyResults(BaseModel):
    """What ``personae eval-personas`` found: each side's accuracy, order agreement, the personas."""

    summary: list[SideSummary] = Field(default_factory=list)
    orders_agreed: int = 0
    records_both_scored: int = 0
    personas: list[PersonaRow] = Field(default_factory=list)

    def side(self, name: str) -> SideSummary:
        """The summary of side ``name`` (``chosen`` or ``rejected``); KeyError when the run has none."""
        for summary in self.summary:
            if summary.side == name:
                return summary
        raise KeyError(name)

    @property
    def order_agreement(self) -> float | None:
        """Over both sides, the share of (record, side) pairs scored in both orders whose orders agree."""
        return self.orders_agreed / self.records_both_scored if self.records_both_scored else None


PersonaAccuracyLog = RunLog[PersonaAccuracyConfig, PersonaAccuracyResults]
PersonaAccuracyLog.__doc__ = """The run log of ``personae eval-personas``: a :class:`personae.runs.RunLog` with a
:class:`PersonaAccuracyConfig` and :class:`PersonaAccuracyResults` (its ``costs`` has ``inference`` and
``judging``; read back with :func:`read_persona_accuracy_log`)."""


def read_persona_accuracy_log(path: str | os.PathLike[str]) -> PersonaAccuracyLog:
    """Read a persona-accuracy run log written by ``write_run_log``."""
    return read_log(path, PersonaAccuracyLog, what="persona-accuracy run log")
