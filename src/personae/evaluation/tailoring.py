"""Comparing two generators' responses with an LLM judge: personalization, quality, DeltaPQ.

For every test item (a prompt, the persona it is asked for, response A and response B) the
judge answers twice per criterion, once with A shown first and once with B first. A wins
when both orders pick A, B when both pick B; when the orders disagree the item is a tie.
An item with a judgment that failed or did not parse is *unscored*: it is reported as such
and counted as a tie, never as a win. The win rate of A is ``(wins + ties / 2) / items``,
so two indistinguishable generators score 0.5, and

    DeltaPQ = 0.5 * ((p_wr - 0.5) / 0.5 + (q_wr - 0.5) / 0.5)

combines the personalization and quality win rates (0: no better than B; 1: A always wins).
Every judgment is a :class:`personae.runs.Judgment` (``first`` and ``picked`` are ``A`` or
``B``, ``method`` the criterion) with the messages sent and the judge's raw output; the run
is one :class:`personae.runs.RunLog` (``TailoringEvalLog``). The run itself is
:func:`personae.pipelines.compare_generations`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from personae.evaluation.log import finite
from personae.programs import CRITERIA
from personae.runs import Judgment, RunLog

__all__ = [
    "CRITERIA",
    "CriterionSummary",
    "TailoringConfig",
    "TailoringEvalLog",
    "TailoringItem",
    "TailoringResults",
    "delta_pq",
    "item_outcome",
    "tailoring_results",
]

logger = logging.getLogger(__name__)

ItemOutcome = Literal["A", "B", "tie", "unscored"]


@dataclass(frozen=True)
class TailoringItem:
    """One test prompt, the persona it is asked for, and the two generators' responses."""

    item_id: str
    prompt: str
    persona: str
    response_a: str
    response_b: str


class CriterionSummary(BaseModel):
    """Wins, ties and losses of A against B on one criterion, and A's win rate."""

    criterion: str
    items: int
    wins: int
    ties: int
    losses: int
    unscored: int
    win_rate: float | None


class TailoringResults(BaseModel):
    """What a comparison found: a summary per criterion, DeltaPQ, and each item's outcome."""

    model: str = ""
    a: str = "A"
    b: str = "B"
    summary: list[CriterionSummary] = Field(default_factory=list)
    delta_pq: float | None = None
    outcomes: dict[str, dict[str, str]] = Field(default_factory=dict)

    def criterion(self, name: str) -> CriterionSummary:
        """The summary of criterion ``name``; KeyError when the comparison has none."""
        for summary in self.summary:
            if summary.criterion == name:
                return summary
        raise KeyError(name)


class TailoringConfig(BaseModel):
    """The resolved configuration of a comparison (the command's options, as given)."""

    model: str = ""
    criteria: list[str] = Field(default_factory=list)
    concurrency: int = 1
    max_attempts: int = 3
    extra: dict[str, Any] = Field(default_factory=dict)


TailoringEvalLog = RunLog[TailoringConfig, TailoringResults]
TailoringEvalLog.__doc__ = """The run log of ``personae eval-tailoring``: a :class:`personae.runs.RunLog` with a
:class:`TailoringConfig` and :class:`TailoringResults`."""


def delta_pq(p_wr: float, q_wr: float) -> float:
    """``0.5 * ((p_wr - 0.5) / 0.5 + (q_wr - 0.5) / 0.5)``: personalization and quality win rates combined."""
    return 0.5 * ((p_wr - 0.5) / 0.5 + (q_wr - 0.5) / 0.5)


def item_outcome(judgments: Sequence[Judgment]) -> ItemOutcome:
    """A or B when both orders pick it, ``tie`` when they disagree, ``unscored`` when one failed."""
    if len(judgments) != 2 or not all(j.scored for j in judgments):
        return "unscored"
    first, second = (j.picked for j in judgments)
    return first if first == second and first in ("A", "B") else "tie"  # type: ignore[return-value]


def _summarise(criterion: str, outcomes: Sequence[ItemOutcome]) -> CriterionSummary:
    wins, losses = outcomes.count("A"), outcomes.count("B")
    unscored = outcomes.count("unscored")
    ties = outcomes.count("tie") + unscored
    n = len(outcomes)
    return CriterionSummary(criterion=criterion, items=n, wins=wins, ties=ties, losses=losses, unscored=unscored,
                            win_rate=(wins + 0.5 * ties) / n if n else None)


def tailoring_results(items: Sequence[TailoringItem], judgments: Sequence[Judgment], *, criteria: Sequence[str],
                      model: str = "", a: str = "A", b: str = "B") -> TailoringResults:
    """Each item's outcome per criterion, each criterion's summary, and DeltaPQ when both
    personalization and quality were judged (``method`` of a judgment is its criterion)."""
    outcomes: dict[str, dict[str, str]] = {}
    summaries = []
    for criterion in criteria:
        per_item: list[ItemOutcome] = []
        for item in items:
            outcome = item_outcome([j for j in judgments if j.record_id == item.item_id and j.method == criterion])
            outcomes.setdefault(item.item_id, {})[criterion] = outcome
            per_item.append(outcome)
        summaries.append(_summarise(criterion, per_item))
    rates = {s.criterion: s.win_rate for s in summaries}
    p_wr, q_wr = rates.get("personalization"), rates.get("quality")
    return TailoringResults(model=model, a=a, b=b, summary=summaries, outcomes=outcomes,
                            delta_pq=None if p_wr is None or q_wr is None else finite(delta_pq(p_wr, q_wr)))
