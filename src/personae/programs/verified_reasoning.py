"""Verified reasoning: explanations of a user's choices that are kept only when they predict it.

A chain-of-thought judge reads a pair (in an order fixed by a seeded coin, so a judge that
always answers "First" cannot pass by position) and predicts which response the user chose.
When the prediction matches the real choice, its reasoning is a verified trace; otherwise
the judge is asked again on a fresh rollout (``lm.copy(rollout_id=k)``) up to
``max_attempts`` times, and the pair is dropped if no attempt matches.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from personae.data import PreferenceRecord
from personae.programs._batch import describe_error, rollouts, stable_coin
from personae.signatures import PairwiseJudge

__all__ = ["Trace", "VerifiedReasoning"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trace:
    """One explained choice, as the judge saw it."""

    record_id: str
    context: str
    first_response: str
    second_response: str
    chosen: str          # "First" | "Second": where the user's choice was shown
    reasoning: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VerifiedReasoning(dspy.Module):
    """``forward(record) -> Prediction(verified, trace, attempts, errors)``."""

    def __init__(self, *, max_attempts: int = 3, seed: int = 0) -> None:
        super().__init__()
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.seed = seed
        self.explain = dspy.ChainOfThought(PairwiseJudge)

    def forward(self, record: PreferenceRecord) -> dspy.Prediction:
        chosen_first = stable_coin(self.seed, record.record_id, record.prompt, record.chosen)
        first, second = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
        truth = "First" if chosen_first else "Second"
        errors: list[str] = []
        attempts = 0
        lm = dspy.settings.lm
        for attempt_lm in rollouts(lm, self.max_attempts):
            attempts += 1
            try:
                with dspy.context(lm=attempt_lm):
                    pred = self.explain(context=record.prompt, first_response=first, second_response=second)
            except (AdapterParseError, ValueError) as exc:
                errors.append(describe_error(exc))
                continue
            if pred.preferred == truth:
                trace = Trace(record.record_id, record.prompt, first, second, truth, str(pred.reasoning))
                return dspy.Prediction(verified=True, trace=trace, attempts=attempts, errors=errors)
        logger.debug("no verified reasoning for %s after %d attempts", record.record_id, attempts)
        return dspy.Prediction(verified=False, trace=None, attempts=attempts, errors=errors)
