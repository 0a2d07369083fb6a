"""Verified reasoning: explanations of a user's choices that are kept only when they predict it.

A chain-of-thought judge reads a pair (in an order fixed by a seeded coin, so a judge that
always answers "A" cannot pass by position) and predicts which response the user chose.
When the prediction matches the real choice, its reasoning is a verified trace. A prediction
of the other response, an unparseable answer or a failed call is asked again on a fresh
rollout, up to ``attempts`` times; the pair is left unverified if no attempt matches (that is
the program's answer, not an error). A programming error propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dspy

from personae.data import PreferenceRecord, current_fields
from personae.errors import ContentError, DataError
from personae.programs._base import Ask, Program, Setting, Steps, refuse_unknown, require_text
from personae.programs._digest import stable_coin
from personae.signatures import PairwiseJudge

__all__ = ["Trace", "VerifiedReasoning", "check_reached"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trace:
    """One explained choice, as the judge saw it: the pair shown as ``response_a`` and
    ``response_b``, ``preferred`` (``"A"`` or ``"B"``: where the user's choice was shown) and
    the ``reasoning`` that predicted it."""

    record_id: str
    prompt: str
    response_a: str
    response_b: str
    preferred: str
    reasoning: str

    def to_dict(self) -> dict[str, Any]:
        """The trace as a JSON object (:meth:`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trace:
        """A trace from :meth:`to_dict`'s output, or from one written by an earlier version
        (``context``, ``first_response``/``second_response``, ``chosen`` First/Second)."""
        if not isinstance(data, Mapping):
            raise DataError(f"expected a trace object, got a {type(data).__name__}", source="Trace")
        values = current_fields(dict(data))
        if "preferred" not in values and values.get("chosen") in ("First", "Second"):
            values["preferred"] = "A" if values.pop("chosen") == "First" else "B"
        for name in ("prompt", "response_a", "response_b", "preferred", "reasoning"):
            if not isinstance(values.get(name), str):
                raise DataError("missing or not text", source="Trace", field=name)
        if values["preferred"] not in ("A", "B"):
            raise DataError(f"expected A or B, got {values['preferred']!r}", source="Trace", field="preferred")
        return cls(str(values.get("record_id") or ""), values["prompt"], values["response_a"], values["response_b"],
                   values["preferred"], values["reasoning"])


def as_traces(traces: Any, *, program: str) -> list[Trace]:
    """``traces`` as a list of :class:`Trace` (trace dicts are read with :meth:`Trace.from_dict`);
    a string or any other non-trace is refused with :class:`~personae.errors.DataError`."""
    if isinstance(traces, (str, bytes)) or not isinstance(traces, Sequence):
        got = "text" if isinstance(traces, (str, bytes)) else f"a {type(traces).__name__}"
        raise DataError(f"expected a list of verified traces, got {got} (render a history yourself and pass "
                        "preference_history= instead)", source=f"{program} input", field="traces")
    out: list[Trace] = []
    for i, trace in enumerate(traces, 1):
        if isinstance(trace, Trace):
            out.append(trace)
        elif isinstance(trace, Mapping):
            out.append(Trace.from_dict(trace))
        else:
            raise DataError(f"trace {i} is a {type(trace).__name__}, not a Trace", source=f"{program} input",
                            field="traces")
    return out


class VerifiedReasoning(Program):
    """``VerifiedReasoning()(prompt=..., chosen=..., rejected=...)``
    ``-> Prediction(verified, trace, attempts, error, kind)``.

    ``trace`` is the :class:`Trace` when ``verified``, else None; ``attempts`` counts the answers
    asked for, ``error`` and ``kind`` say why the last one failed. ``record_id`` (optional) names
    the pair in its trace and, with ``seed``, picks the order it is shown in.

    Args:
        attempts: Answers asked for before the pair is left unverified.
        seed: The coin that orders each pair.
    """

    seed = Setting()

    def __init__(self, *, attempts: int = 3, seed: int = 0) -> None:
        super().__init__(attempts=attempts)
        self.seed = seed
        self.explain = dspy.ChainOfThought(PairwiseJudge)

    def forward(self, prompt: str | None = None, chosen: str | None = None, rejected: str | None = None,
                record_id: str | None = None, **other: Any) -> dspy.Prediction:
        """Explain one pair; see the class docstring for what comes back."""
        refuse_unknown(type(self).__name__, ["prompt", "chosen", "rejected", "record_id"], other)
        return self.run(self._steps(prompt, chosen, rejected, record_id))

    async def aforward(self, prompt: str | None = None, chosen: str | None = None, rejected: str | None = None,
                       record_id: str | None = None, **other: Any) -> dspy.Prediction:
        """:meth:`forward` on DSPy's async LM path."""
        refuse_unknown(type(self).__name__, ["prompt", "chosen", "rejected", "record_id"], other)
        return await self.arun(self._steps(prompt, chosen, rejected, record_id))

    def for_record(self, record: PreferenceRecord) -> dspy.Prediction:
        """Explain a :class:`~personae.data.PreferenceRecord` (its id names the trace)."""
        return self(prompt=record.prompt, chosen=record.chosen,
                    rejected=record.rejected, record_id=record.record_id)

    def _steps(self, prompt: Any, chosen: Any, rejected: Any, record_id: Any) -> Steps:
        require_text(type(self).__name__, prompt=prompt, chosen=chosen, rejected=rejected)
        rid = str(record_id or "")
        chosen_first = stable_coin(self.seed, rid, prompt, chosen)
        a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
        truth = "A" if chosen_first else "B"

        def verified(pred: dspy.Prediction) -> Trace:
            if pred.preferred != truth:
                raise ContentError(f"the explanation predicts {pred.preferred!r}, not the user's choice")
            return Trace(rid, prompt, a, b, truth, str(pred.reasoning))

        outcome = yield Ask(self.explain, {"prompt": prompt, "response_a": a, "response_b": b}, check=verified,
                            retry=None, outcome=True)
        if outcome.value is None:
            logger.debug("no verified reasoning for %s after %d attempts: %s", rid, outcome.attempts, outcome.error)
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
