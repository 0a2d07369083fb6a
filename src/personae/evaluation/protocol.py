"""The PersonalRewardBench protocol: every method judges the same test pairs, in both orders.

Each user's pairs are split by prompt (:func:`personae.data.split_user`, 50/20/30 by
default); the test pairs are judged by every method, each pair twice (chosen response
first, then second). A judgment whose calls keep failing, or whose answer does not parse,
is unscored with its reason and counts as wrong, as do the judgments of a method that has
nothing to judge a user with. Pooled accuracy comes with a 95% percentile bootstrap
interval over pairs (see :mod:`personae.evaluation.stats`).
"""

from __future__ import annotations

import functools
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dspy

from personae.data import PreferenceData, PreferenceRecord, UserHistory, UserSplit, split_user
from personae.errors import ConfigError, DataError
from personae.evaluation.log import (
    CostLog,
    JudgmentLog,
    MethodSummary,
    RunConfig,
    RunLog,
    UserRow,
    finite,
    package_versions,
)
from personae.evaluation.methods import check_methods, judge_for
from personae.evaluation.stats import method_stats
from personae.lm import CallCapture, Cost, CostMeter
from personae.programs import DefaultJudge, Judge, Judgment, Outcome, judge_pair, run_batch

__all__ = ["EvaluationRun", "evaluate_methods"]

logger = logging.getLogger(__name__)


@dataclass
class EvaluationRun:
    """The result of :func:`evaluate_methods`; ``log`` holds everything (see :class:`RunLog`)."""

    log: RunLog

    @property
    def summary(self) -> dict[str, MethodSummary]:
        return {s.method: s for s in self.log.summary}

    @property
    def users(self) -> list[UserRow]:
        return self.log.users

    @property
    def judgments(self) -> list[JudgmentLog]:
        return self.log.judgments

    @property
    def cost(self) -> Cost:
        """The LM cost of the whole run (judgments reused from an earlier run cost nothing)."""
        return self.log.cost.to_cost()

    def method_cost(self, method: str) -> Cost:
        return self.log.method(method).cost.to_cost()

    def accuracy(self, method: str) -> float:
        """Pooled accuracy of ``method`` (unscored judgments counted wrong)."""
        value = self.log.method(method).accuracy
        return float("nan") if value is None else value


@dataclass(frozen=True)
class _Task:
    index: int
    method: str
    user_id: str
    record: PreferenceRecord
    chosen_first: bool
    judge: Judge


def _split_users(users: Mapping[str, UserHistory], fractions: tuple[float, float, float]) -> dict[str, UserSplit]:
    splits = {}
    for user_id, history in users.items():
        ids = [r.record_id for r in history.records]
        if len(set(ids)) != len(ids):
            raise DataError("record ids repeat within one user; cannot tell the pairs apart",
                            source=f"user {user_id}", field="record_id")
        splits[user_id] = split_user(history.records, fractions)
    return splits


def evaluate_methods(
    users: Mapping[str, UserHistory] | PreferenceData,
    methods: Sequence[str],
    *,
    lm: dspy.BaseLM,
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3),
    judges_dir: str | os.PathLike[str] | None = None,
    personas: Mapping[str, str] | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
    previous: Iterable[JudgmentLog | Mapping[str, Any]] = (),
    source: str | None = None,
    extra: Mapping[str, Any] | None = None,
    on_judgment: Callable[[JudgmentLog], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvaluationRun:
    """Judge every user's test pairs with every method, in both orders, and summarise.

    Args:
        users: Histories by user id, or loaded data (grouped with ``by_user``).
        methods: Any of ``default``, ``profile``, ``memory``, ``persona``, ``synthesizeme``.
        lm: The judging model; it is never modified (retries use fresh-rollout copies).
        fractions: Train, validation and test shares of each user's prompts.
        judges_dir: Folder of fitted judges, ``judge_path(judges_dir, user_id)`` (synthesizeme).
        personas: A persona per user id for ``persona``; else the records' ``persona`` column.
        seed: Seeds the bootstrap (each method's interval from ``Random(f"{seed}/{method}")``).
        previous: Judgments of an earlier run of the same configuration; scored ones whose
            ``(user, record, method, order)`` is part of this run are reused, not re-judged.
        source: The data source named in the run log (default: ``users.source`` for loaded data).
        extra: More configuration to keep in the run log (e.g. the command's options).
        on_judgment: Called with each new judgment as it is made (one call at a time).
        on_progress: Called with ``(judgments done, total)``.
    """
    chosen = check_methods(methods, judges_dir=judges_dir)
    if concurrency < 1 or max_attempts < 1:
        raise ConfigError("concurrency and max_attempts must be at least 1")
    split_user([], fractions)  # checks the fractions even when there is no user
    if isinstance(users, PreferenceData):
        source = source if source is not None else users.source
        users = users.by_user()
    started = datetime.now(timezone.utc)
    splits = _split_users(users, fractions)
    reused: dict[tuple[str, str, str, bool], JudgmentLog] = {}
    for row in previous:
        old = row if isinstance(row, JudgmentLog) else JudgmentLog.model_validate(row)
        if old.scored:
            reused[old.key] = old

    default = DefaultJudge()
    slots: list[JudgmentLog | None] = []
    pending: dict[str, list[_Task]] = {method: [] for method in chosen}
    for method in chosen:
        for user_id, history in users.items():
            split = splits[user_id]
            if not split.test:
                continue
            judge = judge_for(method, history, split.train + split.val, personas=personas,
                              judges_dir=judges_dir, default=default)
            for record in split.test:
                for chosen_first in (True, False):
                    key = (user_id, record.record_id, method, chosen_first)
                    if isinstance(judge, str):
                        slots.append(JudgmentLog(user_id=user_id, record_id=record.record_id, method=method,
                                                 chosen_first=chosen_first, error=judge))
                    elif key in reused:
                        slots.append(reused[key])
                    else:
                        pending[method].append(_Task(len(slots), method, user_id, record, chosen_first, judge))
                        slots.append(None)
    total = len(slots)
    done = sum(1 for slot in slots if slot is not None)
    n_reused = sum(1 for slot in slots if slot is not None and slot.scored)
    if n_reused:
        logger.info("reusing %d judgments of an earlier run", n_reused)
    for slot in slots:
        if slot is not None and not slot.scored and on_judgment:
            on_judgment(slot)
    if on_progress:
        on_progress(done, total)

    captures: dict[int, CallCapture] = {}

    def judge_one(task: _Task) -> Judgment:
        capture = CallCapture()
        captures[task.index] = capture  # one worker per task: no two threads write one key
        probe = dspy.settings.lm.copy()
        probe.callbacks.append(capture)
        with dspy.context(lm=probe):
            judgment = judge_pair(task.judge, task.record, chosen_first=task.chosen_first)
        if judgment.preferred not in ("First", "Second"):
            raise ValueError(f"the judge answered {judgment.preferred!r}, not First or Second")
        return judgment

    def save(tasks: list[_Task], outcome: Outcome[Judgment]) -> None:
        nonlocal done
        task = tasks[outcome.index]
        capture = captures.pop(task.index, None) or CallCapture()
        value = outcome.value
        row = JudgmentLog(
            user_id=task.user_id, record_id=task.record.record_id, method=task.method,
            chosen_first=task.chosen_first, preferred=value.preferred if value else None,
            correct=value.correct if value else False, reasoning=value.reasoning if value else None,
            error=None if value else (outcome.error or "failed"), attempts=outcome.attempts,
            prompt=capture.messages, raw_output=capture.output,
        )
        slots[task.index] = row
        done += 1
        if on_judgment:
            on_judgment(row)
        if on_progress:
            on_progress(done, total)

    meter = CostMeter()
    costs: dict[str, Cost] = {}
    with meter.track():
        for method in chosen:
            tasks = pending[method]
            method_meter = CostMeter()
            with method_meter.track():
                run_batch(judge_one, tasks, lm=lm, concurrency=concurrency, max_attempts=max_attempts,
                          on_result=functools.partial(save, tasks))
            costs[method] = method_meter.cost
    judgments = [slot for slot in slots if slot is not None]

    config = RunConfig(
        model=str(getattr(lm, "model", type(lm).__name__)), methods=chosen,
        fractions=(fractions[0], fractions[1], fractions[2]), seed=seed, concurrency=concurrency,
        max_attempts=max_attempts, data_source=source or "", users=len(users),
        judges_dir=None if judges_dir is None else str(judges_dir), confidence=confidence, resamples=resamples,
        extra=dict(extra or {}),
    )
    summaries, per_user = [], {}
    for method in chosen:
        summary, per_user[method] = _summarise(method, judgments, costs[method], seed=seed,
                                               confidence=confidence, resamples=resamples)
        summaries.append(summary)
    user_rows = [
        UserRow(user_id=user_id, n_train=len(split.train), n_val=len(split.val), n_test=len(split.test),
                accuracy={m: per_user[m].get(user_id) for m in chosen})
        for user_id, split in splits.items()
    ]
    log = RunLog(config=config, versions=package_versions(), started=started,
                 finished=datetime.now(timezone.utc), cost=CostLog.of(meter.cost), summary=summaries,
                 users=user_rows, judgments=judgments)
    return EvaluationRun(log)


def _summarise(method: str, judgments: Sequence[JudgmentLog], cost: Cost, *, seed: int, confidence: float,
               resamples: int) -> tuple[MethodSummary, dict[str, float]]:
    mine = [j for j in judgments if j.method == method]
    stats = method_stats([(j.user_id, j.record_id, j.chosen_first, j.correct, j.scored) for j in mine],
                         rng=random.Random(f"{seed}/{method}"), confidence=confidence, resamples=resamples)
    reasons = Counter((j.error or "").split(":", 1)[0] for j in mine if not j.scored)
    summary = MethodSummary(
        method=method, judgments=stats.judgments, correct=stats.correct, unscored=stats.unscored,
        accuracy=finite(stats.accuracy), ci_low=finite(stats.ci_low), ci_high=finite(stats.ci_high),
        mean_user_accuracy=finite(stats.mean_user_accuracy), users=stats.users, pairs=stats.pairs,
        pairs_both_scored=stats.pairs_both_scored, orders_agreed=stats.orders_agreed,
        unscored_reasons=dict(reasons.most_common()), cost=CostLog.of(cost),
    )
    return summary, stats.per_user
