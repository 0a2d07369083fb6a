"""Fitting SynthesizeMe judges for many users: bounded concurrency, resumable, fault-tolerant.

Each user's judge is written atomically to ``judge_path(out, user_id)`` as soon as it is
fitted, and the user's row (fitted, or failed with the kind and reason) is appended to the
ledger ``out/progress.jsonl``, so an interrupted run loses at most the users in flight. The
ledger's header records the model, its server and sampling, the preset settings, seed,
persona-synthesis program and LM-call budget (not the settings that change only what a fit
costs, such as pruning); a re-run with others stops before any call, naming each difference
(``fresh=True`` fits every user again). A re-run skips every user whose judge the ledger
records for the same pairs and whose file is there, fits again a user whose pairs changed
(e.g. a larger ``--limit``), and fits again the users that failed (an LM that could not be reached, too few
pairs): a failed user never stops the others. Judges found in ``out`` without a ledger row
(fitted by an earlier version, or copied there) are checked against this run's settings
through the settings each judge records, and kept when they match.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
from pydantic import BaseModel, Field
from typing_extensions import override

from personae.data import UserHistory
from personae.errors import ConfigError
from personae.lm import Cost
from personae.optimizers import COST_ONLY_SETTINGS, PersonalizedJudge, SynthesizeMe, judge_path
from personae.runs import (
    BaseTask,
    Counts,
    Executor,
    Finished,
    Ledger,
    Outcome,
    Progress,
    RunLog,
    RunSpec,
    content_digest,
    describe_changes,
    lm_fingerprint,
    package_versions,
    record_key,
    run,
)

__all__ = ["LEDGER_FILE", "FitLog", "FitReport", "FitResults", "FitTask", "fit_users"]

logger = logging.getLogger(__name__)

LEDGER_FILE = "progress.jsonl"


class FitResults(BaseModel):
    """The users fitted now, skipped (fitted by an earlier run) and failed (with why)."""

    fitted: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    failed: list[tuple[str, str]] = Field(default_factory=list)


FitLog = RunLog[dict[str, Any], FitResults]
"""The run log of a fit (kept in memory: the output folder holds judges only)."""


@dataclass
class FitReport:
    """What :func:`fit_users` did: the judges fitted now, the users skipped (fitted by an earlier run),
    the users that failed with why, the counts and the cost of new calls."""
    fitted: list[PersonalizedJudge] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # already fitted by an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    cost: Cost = field(default_factory=Cost)


def _differences(judge: PersonalizedJudge, model: str, settings: dict[str, Any]) -> str:
    """How ``judge`` was fitted differently from this run ("" when alike); what a judge does
    not record (a hand-made one, or one saved by an earlier version) is not compared."""
    earlier = {"seed": judge.seed, **judge.settings, **({"model": judge.model} if judge.model else {})}
    current = {**settings, "model": model}
    return describe_changes(earlier, current, sorted(k for k in set(current) - COST_ONLY_SETTINGS if k in earlier))


def _adopt(users: Sequence[UserHistory], out: Path, ledger: Ledger, model: str, settings: dict[str, Any]) -> None:
    """Record in the ledger the judges in ``out`` that it does not know, once they match this run."""
    mismatched: list[str] = []
    adopted: list[UserHistory] = []
    known = {row.get("user_id") for row in ledger.rows.values()}
    for user in users:
        path = judge_path(out, user.user_id)
        if user.user_id in known or not path.exists():  # the ledger speaks for it, or nothing to adopt
            continue
        judge = PersonalizedJudge.load(path)
        differences = _differences(judge, model, settings)
        if differences:
            mismatched.append(f"{user.user_id}: {differences}")
        adopted.append(user)
    if mismatched:
        more = f" and {len(mismatched) - 3} more users" if len(mismatched) > 3 else ""
        raise ConfigError(f"{out} holds judges fitted with other settings ({'; '.join(mismatched[:3])}{more}); "
                          "use another --out, or --fresh to fit them again")
    for user in adopted:
        ledger.append(user_key(user), {"user_id": user.user_id, "judge": judge_path(out, user.user_id).name,
                                       "error": None, "kind": None, "attempts": 0, "adopted": True})


def user_key(user: UserHistory) -> str:
    """``user_id@digest``: a user's key in the ledger; a user whose pairs changed is fitted again."""
    return f"{user.user_id}@{content_digest(*(record_key(r) for r in user.records))}"


class FitTask(BaseTask[UserHistory, PersonalizedJudge, FitLog]):
    """Fit a judge for every user not yet fitted in the output folder (see the module docstring).

    Each judge is written as soon as it is fitted, before its ledger row. The output folder holds
    the judges and the ledger (``progress.jsonl``) and no run log: it is a folder of judges, read
    as such. After the run, ``report`` says what happened.
    """

    name = "fit"

    def __init__(self, users: Sequence[UserHistory], *, fitter: SynthesizeMe | None = None) -> None:
        self.users, self.fitter = users, fitter or SynthesizeMe()
        self.settings = self.fitter.settings()
        self.out = Path(".")
        self.lm: dspy.BaseLM | None = None
        self.fitted: dict[str, PersonalizedJudge] = {}
        self.report = FitReport()

    @override
    def fingerprint(self, lm: dspy.BaseLM) -> Mapping[str, Any]:
        return {**lm_fingerprint(lm), **{k: v for k, v in self.settings.items() if k not in COST_ONLY_SETTINGS},
                "max_lm_calls": self.fitter.max_lm_calls}

    @override
    def paths(self, out: Path) -> tuple[Path, Path | None]:
        return out / LEDGER_FILE, None

    @override
    def opened(self, ledger: Ledger, spec: RunSpec, lm: dspy.BaseLM) -> None:
        self.out, self.lm = ledger.path.parent, lm
        if not spec.fresh:
            _adopt(self.users, self.out, ledger, str(getattr(lm, "model", "")), self.settings)

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> FitLog:
        return FitLog(command="fit", config={"settings": self.settings}, versions=package_versions(),
                      results=FitResults())

    @override
    def items(self, stage: str, done: Finished) -> Sequence[UserHistory]:
        return self.users

    @override
    def key(self, item: UserHistory) -> str:
        return user_key(item)

    @override
    def call(self, item: UserHistory) -> PersonalizedJudge:
        return self.fitter.fit(item, lm=self.lm)  # on a worker: it writes nothing

    @override
    def row(self, item: UserHistory, outcome: Outcome[PersonalizedJudge]) -> dict[str, Any]:
        # Here, on the caller's side and one user at a time, the judge is written before its
        # ledger row: a row always names a file that is there.
        judge, path = outcome.value, judge_path(self.out, item.user_id)
        if judge is None:
            logger.warning("fitting %s failed (%s): %s", item.user_id, outcome.kind, outcome.error)
            return {"user_id": item.user_id}
        judge.save(path)
        self.fitted[item.user_id] = judge
        return {"user_id": item.user_id, "judge": path.name, "val_accuracy": judge.val_accuracy,
                "demos": len(judge.demos), "cost": judge.cost}

    @override
    def reusable(self, item: UserHistory, row: Mapping[str, Any]) -> bool:
        return judge_path(self.out, item.user_id).exists()

    @override
    def summary(self, started: FitLog, done: Finished) -> FitLog:
        report = FitReport(counts=done.counts, cost=done.cost)
        for user, entry in zip(self.users, done.all_rows, strict=True):
            if entry.get("error"):
                report.failed.append((user.user_id, str(entry["error"])))
            elif user.user_id in self.fitted:
                report.fitted.append(self.fitted[user.user_id])
            else:
                report.skipped.append(user.user_id)
        self.report = report
        results = FitResults(fitted=[j.user_id for j in report.fitted], skipped=report.skipped, failed=report.failed)
        return started.model_copy(update={"results": results})


def fit_users(
    users: Sequence[UserHistory],
    out: str | os.PathLike[str],
    *,
    lm: dspy.BaseLM,
    fitter: SynthesizeMe | None = None,
    user_concurrency: int = 1,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_done: Callable[[str, str, PersonalizedJudge | None], None] | None = None,
    fresh: bool = False,
) -> FitReport:
    """Fit every user not yet fitted in ``out``: :class:`FitTask` run by :func:`personae.runs.run`,
    ``user_concurrency`` users at a time, each fit once (every call inside a fit has its own retries)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    task = FitTask(users, fitter=fitter)

    def report(entry: dict[str, Any]) -> None:
        if on_done is not None:
            user_id = str(entry["user_id"])
            on_done(user_id, "failed" if entry.get("error") else "fitted", task.fitted.get(user_id))

    spec = RunSpec(concurrency=user_concurrency, max_attempts=1, out=str(out), fresh=fresh)
    run(task, spec, lm=lm, executor=executor, progress=progress, on_row=report)
    return task.report
