"""The one pair-judging base: every command that judges pairs makes its judgments and summaries here.

A :class:`PairItem` is one judgment to make: a pair shown to one judge in one order. Its key
is ``SCOPE/METHOD/JUDGE/PAIR/FIRST`` (whose judgment it is, the method, a digest of what the
judge knows, the pair's id with a digest of its texts, the response shown first), the same
shape for ``judge``, ``evaluate``, ``eval-personas``, ``eval-tailoring`` and reward-model
scoring. :class:`PairJudging` is the :class:`~personae.runs.Task` part they share (key, call,
row); :func:`pair_stats` the one summary builder (accuracy, its bootstrap interval over pairs,
order agreement, per-user accuracy, unscored reasons).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from typing_extensions import override

from personae.data import PreferenceRecord
from personae.evaluation.stats import MethodStats, method_stats
from personae.programs import Judge, Verdict
from personae.runs import BaseTask, Judgment, Outcome, RunLog, record_key

__all__ = ["PairItem", "PairJudging", "pair_stats", "record_items", "unscored_reason"]

L = TypeVar("L", bound=RunLog[Any, Any])


@dataclass(frozen=True)
class PairItem:
    """One judgment to make: ``responses`` (the texts of ``labels[0]`` and ``labels[1]``) shown to
    ``judge`` with ``first`` as A. ``truth`` is the label a right judgment picks (None: none is
    right, as between two generators); ``inputs`` are further judge inputs (a tailoring judge's
    persona); ``earlier`` the key an earlier version of personae gave this judgment."""

    record_id: str
    pair_id: str
    prompt: str
    responses: tuple[str, str]
    first: str
    judge: Judge = field(compare=False, repr=False)
    judge_id: str = ""
    method: str = "default"
    scope: str = ""
    labels: tuple[str, str] = ("chosen", "rejected")
    truth: str | None = "chosen"
    user_id: str | None = None
    side: Literal["chosen", "rejected"] | None = None
    persona: str | None = None
    inputs: tuple[tuple[str, str], ...] = ()
    earlier: str | None = None

    @property
    def key(self) -> str:
        """``SCOPE/METHOD/JUDGE/PAIR/FIRST`` (``-`` for no scope)."""
        return f"{self.scope or '-'}/{self.method}/{self.judge_id}/{self.pair_id}/{self.first}"

    @property
    def second(self) -> str:
        """The label shown as B."""
        return self.labels[1] if self.first == self.labels[0] else self.labels[0]

    def with_earlier(self, key: str) -> PairItem:
        """This item, with the key an earlier version of personae gave it."""
        return replace(self, earlier=key)

    def shown(self) -> tuple[str, str]:
        """The texts shown as A and B."""
        return self.responses if self.first == self.labels[0] else (self.responses[1], self.responses[0])


def record_items(record: PreferenceRecord, judge: Judge, *, orders: Sequence[str] = ("chosen", "rejected"),
                 **fields: Any) -> list[PairItem]:
    """A record's judgments: one per order (by default both: chosen response first, then rejected
    first); ``fields`` fill the rest of each :class:`PairItem`."""
    return [PairItem(record_id=record.record_id, pair_id=record_key(record), prompt=record.prompt,
                     responses=(record.chosen, record.rejected), first=first, judge=judge, **fields)
            for first in orders]


class PairJudging(BaseTask[PairItem, Verdict, L]):
    """The pair-judging part of a task: each item's key, its call to the judge and its judgment row."""

    capture = True

    @override
    def key(self, item: PairItem) -> str:
        return item.key

    @override
    def earlier_key(self, item: PairItem) -> str | None:
        return item.earlier

    @override
    def call(self, item: PairItem) -> Verdict:
        a, b = item.shown()
        verdict: Verdict = item.judge(prompt=item.prompt, response_a=a, response_b=b, **dict(item.inputs))
        return verdict

    @override
    def row(self, item: PairItem, outcome: Outcome[Verdict]) -> dict[str, Any]:
        judgment = Judgment.of(outcome, record_id=item.record_id, first=item.first, second=item.second,
                               truth=item.truth, user_id=item.user_id, method=item.method, side=item.side,
                               persona=item.persona)
        return judgment.model_dump(mode="json")

    @staticmethod
    def judgments(rows: Sequence[dict[str, Any]]) -> list[Judgment]:
        """Ledger rows as judgments."""
        return [Judgment.model_validate(row) for row in rows]


def unscored_reason(error: str) -> str:
    """A short category of an unscored judgment's reason, for summaries."""
    if error.startswith("no persona:"):
        return "no persona: " + error.split(":", 2)[1].strip().split(":", 1)[0]
    return error.split(":", 1)[0]


def pair_stats(judgments: Sequence[Judgment], *, label: str, seed: int, confidence: float,
               resamples: int) -> tuple[MethodStats, dict[str, int]]:
    """The figures of some judgments (accuracy with unscored ones counted wrong, its bootstrap
    interval resampling pairs, order agreement, accuracy per user) and their unscored reasons,
    most common first. The bootstrap's random stream depends on ``seed`` and ``label`` alone."""
    stats = method_stats([(j.user_id or "", j.record_id, j.chosen_first, j.correct is True, j.scored)
                          for j in judgments], rng=random.Random(f"{seed}/{label}"), confidence=confidence,
                         resamples=resamples)
    reasons = Counter(unscored_reason(j.error or "") for j in judgments if not j.scored)
    return stats, dict(reasons.most_common())
