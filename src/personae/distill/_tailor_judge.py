"""Comparing two generators' responses with an LLM judge: personalization, quality, DeltaPQ.

For every test item (a prompt, the persona it is asked for, response A and response B) the
judge answers twice per criterion, once with A shown first and once with B first. A wins
when both orders pick A, B when both pick B; when the orders disagree the item is a tie.
An item with a judgment that failed or did not parse is *unscored*: it is reported as such
and counted as a tie, never as a win. The win rate of A is ``(wins + ties / 2) / items``,
so two indistinguishable generators score 0.5, and

    DeltaPQ = 0.5 * ((p_wr - 0.5) / 0.5 + (q_wr - 0.5) / 0.5)

combines the personalization and quality win rates (0: no better than B; 1: A always wins).
Every judgment keeps the messages sent and the judge's raw output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import dspy
from pydantic import BaseModel, Field

from personae.errors import ConfigError
from personae.evaluation.log import CostLog, finite, package_versions
from personae.lm import CallCapture

__all__ = [
    "CRITERIA",
    "CriterionSummary",
    "TailoringEvalLog",
    "TailoringItem",
    "TailoringJudge",
    "TailoringJudgment",
    "compare_generations",
    "delta_pq",
    "item_outcome",
]

logger = logging.getLogger(__name__)

CRITERIA = ("personalization", "quality")
TAILORING_LOG_VERSION = 1
Outcome = Literal["A", "B", "tie", "unscored"]


@dataclass(frozen=True)
class TailoringItem:
    """One test prompt, the persona it is asked for, and the two generators' responses."""

    item_id: str
    prompt: str
    persona: str
    response_a: str
    response_b: str


class TailoringJudge(dspy.Module):
    """Judges two responses on one criterion: ``personalization`` (needs the persona) or ``quality``."""

    def __init__(self, criterion: str) -> None:
        super().__init__()
        from personae.signatures.tailoring import TailoringPersonalizationJudge, TailoringQualityJudge

        if criterion not in CRITERIA:
            raise ConfigError(f"unknown criterion {criterion!r}; choose from {', '.join(CRITERIA)}")
        self.criterion = criterion
        signature = TailoringPersonalizationJudge if criterion == "personalization" else TailoringQualityJudge
        self.predict = dspy.ChainOfThought(signature)

    def forward(self, prompt: str, persona: str, first_response: str, second_response: str) -> dspy.Prediction:
        inputs = {"prompt": prompt, "first_response": first_response, "second_response": second_response}
        if self.criterion == "personalization":
            inputs["persona"] = persona
        pred = self.predict(**inputs)
        return dspy.Prediction(preferred=pred.preferred, reasoning=pred.reasoning)


class TailoringJudgment(BaseModel):
    """One judgment: one item, one criterion, one order. ``winner`` is A or B (None: unscored)."""

    item_id: str
    criterion: str
    a_first: bool
    preferred: str | None = None
    winner: str | None = None
    reasoning: str | None = None
    error: str | None = None
    attempts: int = 0
    prompt: list[dict[str, Any]] | None = None
    raw_output: str | None = None

    @property
    def scored(self) -> bool:
        return self.error is None


class CriterionSummary(BaseModel):
    """Wins, ties and losses of A against B on one criterion, and A's win rate."""

    criterion: str
    items: int
    wins: int
    ties: int
    losses: int
    unscored: int
    win_rate: float | None


class TailoringEvalLog(BaseModel):
    """Everything about one comparison of two generators."""

    version: int = TAILORING_LOG_VERSION
    model: str
    a: str
    b: str
    config: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str | None] = Field(default_factory=dict)
    started: datetime
    finished: datetime
    cost: CostLog = Field(default_factory=CostLog)
    summary: list[CriterionSummary] = Field(default_factory=list)
    delta_pq: float | None = None
    outcomes: dict[str, dict[str, str]] = Field(default_factory=dict)
    judgments: list[TailoringJudgment] = Field(default_factory=list)

    def criterion(self, name: str) -> CriterionSummary:
        for summary in self.summary:
            if summary.criterion == name:
                return summary
        raise KeyError(name)


def delta_pq(p_wr: float, q_wr: float) -> float:
    """``0.5 * ((p_wr - 0.5) / 0.5 + (q_wr - 0.5) / 0.5)``: personalization and quality win rates combined."""
    return 0.5 * ((p_wr - 0.5) / 0.5 + (q_wr - 0.5) / 0.5)


def item_outcome(judgments: Sequence[TailoringJudgment]) -> Outcome:
    """A or B when both orders pick it, ``tie`` when they disagree, ``unscored`` when one failed."""
    if len(judgments) != 2 or not all(j.scored for j in judgments):
        return "unscored"
    first, second = (j.winner for j in judgments)
    return first if first == second and first in ("A", "B") else "tie"  # type: ignore[return-value]


def _summarise(criterion: str, outcomes: Sequence[Outcome]) -> CriterionSummary:
    wins, losses = outcomes.count("A"), outcomes.count("B")
    unscored = outcomes.count("unscored")
    ties = outcomes.count("tie") + unscored
    n = len(outcomes)
    return CriterionSummary(criterion=criterion, items=n, wins=wins, ties=ties, losses=losses, unscored=unscored,
                            win_rate=(wins + 0.5 * ties) / n if n else None)


@dataclass(frozen=True)
class _Task:
    index: int
    item: TailoringItem
    criterion: str
    a_first: bool


def compare_generations(
    items: Sequence[TailoringItem],
    *,
    lm: dspy.BaseLM,
    criteria: Sequence[str] = CRITERIA,
    concurrency: int = 1,
    max_attempts: int = 3,
    a: str = "A",
    b: str = "B",
    config: dict[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> TailoringEvalLog:
    """Judge A against B on every item and criterion, in both orders; summarise (see the module docstring).

    ``a`` and ``b`` name the two generators in the log; ``config`` is kept in it as given.
    """
    from personae.lm import CostMeter
    from personae.programs import run_batch

    criteria = list(dict.fromkeys(criteria))
    for criterion in criteria:
        if criterion not in CRITERIA:
            raise ConfigError(f"unknown criterion {criterion!r}; choose from {', '.join(CRITERIA)}")
    if len({item.item_id for item in items}) != len(items):
        raise ConfigError("item ids must be distinct")
    judges = {criterion: TailoringJudge(criterion) for criterion in criteria}
    tasks = [_Task(len(criteria) * 2 * k + 2 * c + o, item, criterion, a_first)
             for k, item in enumerate(items) for c, criterion in enumerate(criteria)
             for o, a_first in enumerate((True, False))]
    captures: dict[int, CallCapture] = {}
    slots: list[TailoringJudgment | None] = [None] * len(tasks)
    done = 0

    def judge_one(task: _Task) -> dspy.Prediction:
        capture = CallCapture()
        captures[task.index] = capture
        probe = dspy.settings.lm.copy()
        probe.callbacks.append(capture)
        first, second = ((task.item.response_a, task.item.response_b) if task.a_first
                         else (task.item.response_b, task.item.response_a))
        with dspy.context(lm=probe):
            pred = judges[task.criterion](prompt=task.item.prompt, persona=task.item.persona,
                                          first_response=first, second_response=second)
        if pred.preferred not in ("First", "Second"):
            raise ValueError(f"the judge answered {pred.preferred!r}, not First or Second")
        return pred

    def save(outcome: Any) -> None:
        nonlocal done
        task = tasks[outcome.index]
        capture = captures.pop(task.index, None) or CallCapture()
        pred = outcome.value
        winner = None
        if pred is not None:
            winner = "A" if (pred.preferred == "First") == task.a_first else "B"
        slots[task.index] = TailoringJudgment(
            item_id=task.item.item_id, criterion=task.criterion, a_first=task.a_first,
            preferred=None if pred is None else str(pred.preferred), winner=winner,
            reasoning=None if pred is None else str(pred.reasoning),
            error=None if pred is not None else (outcome.error or "failed"), attempts=outcome.attempts,
            prompt=capture.messages, raw_output=capture.output)
        done += 1
        if on_progress:
            on_progress(done, len(tasks))

    started = datetime.now(timezone.utc)
    meter = CostMeter()
    with meter.track():
        run_batch(judge_one, tasks, lm=lm, concurrency=concurrency, max_attempts=max_attempts, on_result=save)
    judgments = [slot for slot in slots if slot is not None]
    outcomes: dict[str, dict[str, str]] = {}
    summaries = []
    for criterion in criteria:
        per_item: list[Outcome] = []
        for item in items:
            outcome = item_outcome([j for j in judgments if j.item_id == item.item_id and j.criterion == criterion])
            outcomes.setdefault(item.item_id, {})[criterion] = outcome
            per_item.append(outcome)
        summaries.append(_summarise(criterion, per_item))
    rates = {s.criterion: s.win_rate for s in summaries}
    p_wr, q_wr = rates.get("personalization"), rates.get("quality")
    return TailoringEvalLog(
        model=str(getattr(lm, "model", type(lm).__name__)), a=a, b=b, config=dict(config or {}),
        versions=package_versions(), started=started, finished=datetime.now(timezone.utc),
        cost=CostLog.of(meter.cost), summary=summaries,
        delta_pq=None if p_wr is None or q_wr is None else finite(delta_pq(p_wr, q_wr)),
        outcomes=outcomes, judgments=judgments)

