"""``personae evaluate`` as a task: the PersonalRewardBench protocol.

Each user's pairs are split by prompt (:func:`personae.data.split_user`, 50/20/30 by
default); every method judges the same test pairs, each twice (chosen response first, then
second). A judgment whose calls keep failing, or whose answer does not parse, is unscored with
its reason and counts as wrong, as do the judgments of a method that has nothing to judge a
user with. Pooled accuracy comes with a 95% percentile bootstrap interval over pairs. Each
method is a stage of the run, so each has its own cost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
from typing_extensions import override

from personae.data import PreferenceData, UserHistory, UserSplit, split_user
from personae.errors import DataError
from personae.evaluation import (
    EvaluationLog,
    EvaluationResults,
    MethodSummary,
    RunConfig,
    UserRow,
    check_methods,
    judge_for,
    summarise_method,
)
from personae.evaluation.judging import PairItem, PairJudging, record_items
from personae.lm import Cost
from personae.programs import DefaultJudge, judge_digest
from personae.runs import Executor, Finished, Judgment, Ledger, Progress, RunSpec, package_versions, run

__all__ = ["EvaluateTask", "EvaluationRun", "evaluate_methods"]


@dataclass
class EvaluationRun:
    """The result of an evaluation; ``log`` holds everything (an :class:`EvaluationLog`)."""

    log: EvaluationLog

    @property
    def summary(self) -> dict[str, MethodSummary]:
        """Each method's :class:`MethodSummary`, by method name."""
        return {s.method: s for s in self.log.results.summary}

    @property
    def users(self) -> list[UserRow]:
        """One row per user: split sizes and accuracy per method."""
        return self.log.results.users

    @property
    def judgments(self) -> list[Judgment]:
        """Every judgment of the run, of every method."""
        return self.log.judgments

    @property
    def cost(self) -> Cost:
        """The LM cost of the whole run (judgments reused from an earlier run cost nothing)."""
        return self.log.cost

    def method_cost(self, method: str) -> Cost:
        """The LM cost of ``method``'s judgments (KeyError for a method the run did not evaluate)."""
        return self.log.results.method(method).cost

    def accuracy(self, method: str) -> float:
        """Pooled accuracy of ``method`` (unscored judgments counted wrong)."""
        value = self.log.results.method(method).accuracy
        return float("nan") if value is None else value


class EvaluateTask(PairJudging[EvaluationLog]):
    """Judge every user's test pairs with every method, in both orders (see the module docstring).

    Args:
        users: Histories by user id, or loaded data (grouped with ``by_user``).
        methods: Any of ``default``, ``profile``, ``memory``, ``persona``, ``synthesizeme``.
        fractions: Train, validation and test shares of each user's prompts.
        judges_dir: Folder of fitted judges, ``judge_path(judges_dir, user_id)`` (synthesizeme).
        personas: A persona per user id for ``persona``; else the records' ``persona`` column.
        source: The data source named in the run log (default: ``users.source`` for loaded data).
        extra: More configuration to keep in the run log (e.g. the command's options).
        state: What else the judgments depend on (the data's file and columns): a ledger made with
            other values stops the run.
    """

    name = "evaluate"

    def __init__(self, users: Mapping[str, UserHistory] | PreferenceData, methods: Sequence[str], *,
                 fractions: tuple[float, float, float] = (0.5, 0.2, 0.3),
                 judges_dir: str | os.PathLike[str] | None = None, personas: Mapping[str, str] | None = None,
                 source: str | None = None, extra: Mapping[str, Any] | None = None,
                 state: Mapping[str, Any] | None = None) -> None:
        self.state = dict(state or {})
        self.stages = check_methods(methods, judges_dir=judges_dir)
        split_user([], fractions)  # checks the fractions even when there is no user
        if isinstance(users, PreferenceData):
            source = source if source is not None else users.source
            users = users.by_user()
        self.users, self.fractions, self.judges_dir, self.personas = users, fractions, judges_dir, personas
        self.source, self.extra = source or "", dict(extra or {})
        self.splits: dict[str, UserSplit] = {}
        self.unjudged: dict[str, list[Judgment]] = {}
        self.default = DefaultJudge(attempts=1)  # the run retries each judgment

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> EvaluationLog:
        config = RunConfig(
            model=str(getattr(lm, "model", type(lm).__name__)), methods=list(self.stages), fractions=self.fractions,
            seed=spec.seed, concurrency=spec.resolved_concurrency(), max_attempts=spec.max_attempts,
            data_source=self.source, users=len(self.users), confidence=spec.confidence, resamples=spec.resamples,
            judges_dir=None if self.judges_dir is None else str(self.judges_dir), extra=self.extra)
        return EvaluationLog(command="evaluate", config=config, versions=package_versions(),
                             results=EvaluationResults())

    @override
    def items(self, stage: str, done: Finished) -> list[PairItem]:
        if not self.splits:
            for user_id, history in self.users.items():
                ids = [r.record_id for r in history.records]
                if len(set(ids)) != len(ids):
                    raise DataError("record ids repeat within one user; cannot tell the pairs apart",
                                    source=f"user {user_id}", field="record_id")
                self.splits[user_id] = split_user(history.records, self.fractions)
        items: list[PairItem] = []
        self.unjudged[stage] = []
        for user_id, history in self.users.items():
            split = self.splits[user_id]
            judge = judge_for(stage, history, split.train + split.val, personas=self.personas,
                              judges_dir=self.judges_dir, default=self.default) if split.test else None
            for record in split.test:
                if isinstance(judge, str):  # nothing to judge this user with: unscored, not run
                    self.unjudged[stage] += [Judgment(user_id=user_id, record_id=record.record_id, method=stage,
                                                      first=first, error=judge, kind="no_judge")
                                             for first in ("chosen", "rejected")]
                elif judge is not None:
                    items += record_items(record, judge, method=stage, scope=user_id, user_id=user_id,
                                         judge_id=judge_digest(judge))
        return items

    @override
    def decided(self, stage: str, done: Finished) -> list[dict[str, Any]]:
        return [j.model_dump(mode="json") for j in self.unjudged.get(stage, [])]

    @override
    def summary(self, started: EvaluationLog, done: Finished) -> EvaluationLog:
        judgments, config = self.judgments(done.all_rows), started.config
        summaries, per_user = [], {}
        for method in self.stages:
            summary, per_user[method] = summarise_method(method, judgments, done.costs[method], seed=config.seed,
                                                         confidence=config.confidence, resamples=config.resamples)
            summaries.append(summary)
        users = [UserRow(user_id=user_id, n_train=len(split.train), n_val=len(split.val), n_test=len(split.test),
                         accuracy={m: per_user[m].get(user_id) for m in self.stages})
                 for user_id, split in self.splits.items()]
        return started.model_copy(update={"judgments": judgments,
                                          "results": EvaluationResults(summary=summaries, users=users)})


def evaluate_methods(
    users: Mapping[str, UserHistory] | PreferenceData, methods: Sequence[str], *, lm: dspy.BaseLM,
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3), judges_dir: str | os.PathLike[str] | None = None,
    personas: Mapping[str, str] | None = None, concurrency: int = 1, max_attempts: int = 3, seed: int = 0,
    confidence: float = 0.95, resamples: int = 2000, ledger: Ledger | None = None, executor: Executor | None = None,
    progress: Progress | None = None, source: str | None = None, extra: Mapping[str, Any] | None = None,
    on_judgment: Callable[[Judgment], None] | None = None, log_path: str | os.PathLike[str] | None = None,
) -> EvaluationRun:
    """:class:`EvaluateTask` run by :func:`personae.runs.run` in one call: the task's arguments, the
    run's settings (``concurrency`` ... ``resamples``), and where it writes (``ledger``: judgments
    as they are made, and reused from it; ``log_path``: the run log)."""
    task = EvaluateTask(users, methods, fractions=fractions, judges_dir=judges_dir, personas=personas,
                        source=source, extra=extra)
    spec = RunSpec(concurrency=concurrency, max_attempts=max_attempts, seed=seed, confidence=confidence,
                   resamples=resamples)
    on_row = None if on_judgment is None else lambda row: on_judgment(Judgment.model_validate(row))
    return EvaluationRun(run(task, spec, lm=lm, ledger=ledger, log_path=log_path, executor=executor,
                             progress=progress, on_row=on_row))
