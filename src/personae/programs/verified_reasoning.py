"""Verified reasoning: explanations of a user's choices that are kept only when they predict it.

A chain-of-thought judge reads a pair (in an order fixed by a seeded coin, so a judge that
always answers "First" cannot pass by position) and predicts which response the user chose.
When the prediction matches the real choice, its reasoning is a verified trace. A prediction
of the other response is a content failure, retried like an LM or parse failure by the run
layer's :class:`~personae.runs.RetryPolicy` (each retry a fresh rollout), up to
``max_attempts`` attempts; the pair is dropped if no attempt matches. A programming error
propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dspy

from personae.data import PreferenceRecord
from personae.errors import ContentError
from personae.programs._digest import stable_coin
from personae.signatures import PairwiseJudge

__all__ = ["Trace", "VerifiedReasoning", "check_reached"]

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
            from personae.errors import ConfigError

            raise ConfigError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.seed = seed
        self.explain = dspy.ChainOfThought(PairwiseJudge)

    def forward(self, record: PreferenceRecord) -> dspy.Prediction:
        chosen_first = stable_coin(self.seed, record.record_id, record.prompt, record.chosen)
        first, second = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
        truth = "First" if chosen_first else "Second"
        from personae.runs import RetryPolicy

        def explain() -> Trace:
            pred = self.explain(context=record.prompt, first_response=first, second_response=second)
            if pred.preferred != truth:
                raise ContentError(f"the explanation predicts {pred.preferred!r}, not the user's choice")
            return Trace(record.record_id, record.prompt, first, second, truth, str(pred.reasoning))

        outcome = RetryPolicy(max_attempts=self.max_attempts).attempt(explain)
        if outcome.value is None:
            logger.debug("no verified reasoning for %s after %d attempts: %s", record.record_id, outcome.attempts,
                         outcome.error)
        return dspy.Prediction(verified=outcome.value is not None, trace=outcome.value, attempts=outcome.attempts,
                               error=outcome.error, kind=outcome.kind)


def check_reached(verified: Sequence[dspy.Prediction], item: str) -> None:
    """Raise LMCallError when the model answered none of ``verified`` (every one failed as a call,
    not as a wrong or unusable answer): what is built on nothing must not be kept as a result."""
    from personae.errors import LMCallError
    from personae.runs import CALL_FAILURES

    failures = [pred for pred in verified if pred.kind in CALL_FAILURES]
    if verified and len(failures) == len(verified):
        last = failures[-1]
        raise LMCallError(str(last.error), kind=str(last.kind), item=item,
                          attempts=sum(int(pred.attempts) for pred in verified))
