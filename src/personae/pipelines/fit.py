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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from personae.data import UserHistory
from personae.errors import ConfigError
from personae.lm import Cost
from personae.optimizers import COST_ONLY_SETTINGS, PersonalizedJudge, SynthesizeMe, judge_path
from personae.runs import (
    Counts,
    Executor,
    Ledger,
    Outcome,
    Progress,
    RetryPolicy,
    ThreadExecutor,
    content_digest,
    describe_changes,
    lm_fingerprint,
    record_key,
    run_items,
)

__all__ = ["LEDGER_FILE", "FitReport", "fit_users"]

logger = logging.getLogger(__name__)

LEDGER_FILE = "progress.jsonl"


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
    """Fit every user not yet fitted in ``out``; ``on_done(user_id, status, judge)`` reports each
    user fitted or failed now (status ``fitted`` or ``failed``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fitter = fitter or SynthesizeMe()
    model, settings = str(getattr(lm, "model", "")), fitter.settings()
    fingerprint = {**lm_fingerprint(lm), **{k: v for k, v in settings.items() if k not in COST_ONLY_SETTINGS},
                   "max_lm_calls": fitter.max_lm_calls}
    ledger = Ledger(out / LEDGER_FILE, kind="fit", fingerprint=fingerprint, fresh=fresh)
    if not fresh:
        _adopt(users, out, ledger, model, settings)
    fitted: dict[str, PersonalizedJudge] = {}

    def fit(user: UserHistory) -> PersonalizedJudge:
        return fitter.fit(user, lm=lm)  # on a worker: it writes nothing

    def row(user: UserHistory, outcome: Outcome[PersonalizedJudge]) -> dict[str, Any]:
        # Here, on the caller's side and one user at a time, the judge is written before its
        # ledger row: a row always names a file that is there.
        judge = outcome.value
        if judge is None:
            logger.warning("fitting %s failed (%s): %s", user.user_id, outcome.kind, outcome.error)
            return {"user_id": user.user_id}
        judge.save(judge_path(out, user.user_id))
        fitted[user.user_id] = judge
        return {"user_id": user.user_id, "judge": judge_path(out, user.user_id).name,
                "val_accuracy": judge.val_accuracy, "demos": len(judge.demos), "cost": judge.cost}

    def report(entry: dict[str, Any]) -> None:
        if on_done is not None:
            user_id = str(entry["user_id"])
            on_done(user_id, "failed" if entry.get("error") else "fitted", fitted.get(user_id))

    run = run_items(
        fit, users, key=user_key, row=row, ledger=ledger, lm=lm,
        policy=RetryPolicy(max_attempts=1),  # each call inside a fit has its own retries
        executor=executor or ThreadExecutor(user_concurrency, name="fit"), progress=progress, label="fit",
        reusable=lambda user, _: judge_path(out, user.user_id).exists(), on_row=report,
    )
    result = FitReport(counts=run.counts, cost=run.cost)
    for user, entry in zip(users, run.rows, strict=True):
        if entry.get("error"):
            result.failed.append((user.user_id, str(entry["error"])))
        elif user.user_id in fitted:
            result.fitted.append(fitted[user.user_id])
        else:
            result.skipped.append(user.user_id)
    return result
