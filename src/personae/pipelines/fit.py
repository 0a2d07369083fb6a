"""Fitting SynthesizeMe judges for many users: bounded concurrency, resumable, fault-tolerant.

Each user's judge is written atomically to ``judge_path(out, user_id)`` as soon as it is
fitted, so an interrupted run loses at most the users in flight; a re-run skips every user
whose judge file exists, once it has checked that those judges were fitted with the same
model, preset settings, seed and persona-synthesis program (any difference stops the run
with the users and settings named, before any call; ``fresh=True`` fits every user again).
A user whose fit fails (every LM call failing, too few pairs) does
not stop the others: the failure is appended to ``out/failures.jsonl`` with its reason and
the user is tried again on the next run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dspy

from personae.data import UserHistory, append_jsonl
from personae.data._io import describe_changes
from personae.errors import ConfigError
from personae.lm import Cost
from personae.optimizers import COST_ONLY_SETTINGS, PersonalizedJudge, SynthesizeMe, judge_path
from personae.programs import carry_context, describe_error

__all__ = ["FitReport", "fit_users"]

logger = logging.getLogger(__name__)


@dataclass
class FitReport:
    fitted: list[PersonalizedJudge] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # already fitted by an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def cost(self) -> Cost:
        total = Cost()
        for judge in self.fitted:
            c = judge.cost
            total += Cost(c.get("lm_calls", 0), c.get("prompt_tokens", 0), c.get("completion_tokens", 0),
                          c.get("seconds", 0.0))
        return total


def _differences(judge: PersonalizedJudge, model: str, settings: dict[str, Any]) -> str:
    """How ``judge`` was fitted differently from this run ("" when alike); what a judge does
    not record (a hand-made one, or one saved by an earlier version) is not compared."""
    earlier = {"seed": judge.seed, **judge.settings, **({"model": judge.model} if judge.model else {})}
    current = {**settings, "model": model}
    return describe_changes(earlier, current, sorted(k for k in set(current) - COST_ONLY_SETTINGS if k in earlier))


def fit_users(
    users: Sequence[UserHistory],
    out: str | os.PathLike[str],
    *,
    lm: dspy.BaseLM,
    fitter: SynthesizeMe | None = None,
    user_concurrency: int = 1,
    on_done: Callable[[str, str, PersonalizedJudge | None], None] | None = None,
    fresh: bool = False,
) -> FitReport:
    """Fit every user not yet fitted in ``out``; ``on_done(user_id, status, judge)`` reports each."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fitter = fitter or SynthesizeMe()
    report = FitReport()
    todo = []
    model, settings = str(getattr(lm, "model", "")), fitter.settings()
    mismatched: list[str] = []
    for user in users:
        path = judge_path(out, user.user_id)
        if fresh or not path.exists():
            todo.append(user)
            continue
        differences = _differences(PersonalizedJudge.load(path), model, settings)
        if differences:
            mismatched.append(f"{user.user_id}: {differences}")
        report.skipped.append(user.user_id)
    if mismatched:
        more = f" and {len(mismatched) - 3} more users" if len(mismatched) > 3 else ""
        raise ConfigError(f"{out} holds judges fitted with other settings ({'; '.join(mismatched[:3])}{more}); "
                          "use another --out, or --fresh to fit them again")
    logger.info("%d users to fit, %d already fitted in %s", len(todo), len(report.skipped), out)
    runner = carry_context()
    lock = threading.Lock()

    def one(user: UserHistory) -> None:
        try:
            judge = fitter.fit(user, lm=lm)
        except Exception as exc:  # one user's failure never stops the run
            reason = describe_error(exc)
            logger.warning("fitting %s failed: %s", user.user_id, reason)
            with lock:
                append_jsonl({"user_id": user.user_id, "error": reason,
                              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")},
                             out / "failures.jsonl")
                report.failed.append((user.user_id, reason))
                if on_done:
                    on_done(user.user_id, "failed", None)
            return
        judge.save(judge_path(out, user.user_id))
        with lock:
            report.fitted.append(judge)
            if on_done:
                on_done(user.user_id, "fitted", judge)

    if user_concurrency <= 1:
        for user in todo:
            one(user)
    else:
        with ThreadPoolExecutor(max_workers=user_concurrency, thread_name_prefix="fit") as pool:
            for future in [pool.submit(runner, lambda u=u: one(u)) for u in todo]:
                future.result()
    return report
