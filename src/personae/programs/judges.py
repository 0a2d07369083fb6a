"""Pairwise judges: default, persona-guided, profile (demographics) and memory (raw history).

Each judge is a chain-of-thought ``dspy.Module`` answering ``First`` or ``Second`` with its
reasoning. :func:`judge_pair` shows a preference record in a given order and scores the
answer against the user's real choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from personae.data import PreferenceRecord
from personae.errors import ContentError
from personae.signatures import (
    JudgeForPersona,
    JudgeWithHistory,
    JudgeWithPersona,
    JudgeWithProfile,
    PairwiseJudge,
    render_history,
)

__all__ = [
    "DefaultJudge", "Judge", "PairVerdict", "MemoryJudge", "PersonaAccuracyJudge", "PersonaJudge", "ProfileJudge",
    "check_preferred", "first_probability", "judge_digest", "judge_pair",
]


class Judge(dspy.Module):
    """Base of the pairwise judges. Subclasses name their signature and what they know."""

    signature: type[dspy.Signature] = PairwiseJudge

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.ChainOfThought(self.signature)

    def user_inputs(self) -> dict[str, str]:
        """What this judge knows about the user, as signature inputs."""
        return {}

    def forward(self, context: str, first_response: str, second_response: str, **user: str) -> dspy.Prediction:
        inputs = {**self.user_inputs(), **user}
        pred = self.predict(context=context, first_response=first_response, second_response=second_response, **inputs)
        logprobs = pred.get("logprobs") if hasattr(pred, "get") else None
        if logprobs:  # the LM was asked for token log-probabilities (``logprobs=True``)
            return dspy.Prediction(preferred=pred.preferred, reasoning=pred.reasoning, logprobs=logprobs)
        return dspy.Prediction(preferred=pred.preferred, reasoning=pred.reasoning)


class DefaultJudge(Judge):
    """Judges with no knowledge of the user: the non-personalized baseline."""

    signature = PairwiseJudge


class PersonaJudge(Judge):
    """Judges for the user described by ``persona``."""

    signature = JudgeWithPersona

    def __init__(self, persona: str = "") -> None:
        super().__init__()
        self.persona = persona

    def user_inputs(self) -> dict[str, str]:
        return {"persona": self.persona} if self.persona else {}


class PersonaAccuracyJudge(PersonaJudge):
    """The persona-accuracy judge: a :class:`PersonaJudge` that reads the persona after the
    responses, so one record's chosen-side and rejected-side judgments in one order share
    their prompt up to the persona (a server with a prompt cache reads it once)."""

    signature = JudgeForPersona


class ProfileJudge(Judge):
    """Judges for a user known by self-reported demographics."""

    signature = JudgeWithProfile

    def __init__(self, profile: str = "") -> None:
        super().__init__()
        self.profile = profile

    def user_inputs(self) -> dict[str, str]:
        return {"profile": self.profile} if self.profile else {}


class MemoryJudge(Judge):
    """Judges with the user's earlier choices in the prompt, verbatim (clipped to fit)."""

    signature = JudgeWithHistory

    def __init__(self, history: Sequence[PreferenceRecord] = (), *, budget: int = 8000) -> None:
        super().__init__()
        self.history_text = render_history(history, budget=budget) if history else ""

    def user_inputs(self) -> dict[str, str]:
        return {"history": self.history_text} if self.history_text else {}


@dataclass(frozen=True)
class PairVerdict:
    """A judge's answer about one record shown in one order."""

    record_id: str
    chosen_first: bool
    preferred: str            # "First" | "Second"
    reasoning: str

    @property
    def correct(self) -> bool:
        return (self.preferred == "First") == self.chosen_first


def judge_pair(judge: Judge, record: PreferenceRecord, *, chosen_first: bool, **user: str) -> PairVerdict:
    """Show ``record``'s two responses in the given order and return the verdict.

    An answer other than ``First`` or ``Second`` raises :class:`~personae.errors.ContentError`
    (retried like an unparseable answer).
    """
    first, second = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
    pred = judge(context=record.prompt, first_response=first, second_response=second, **user)
    return PairVerdict(record.record_id, chosen_first, check_preferred(pred.preferred), str(pred.reasoning))


def judge_digest(judge: Judge) -> str:
    """A digest of what a judge's answers depend on: what it knows of the user (persona, profile,
    history) and its program (instructions, demonstrations). Judgments are reused from a ledger
    only when it matches."""
    import json

    from personae.programs._digest import program_digest
    from personae.runs import content_digest

    return content_digest(json.dumps(judge.user_inputs(), sort_keys=True, ensure_ascii=False), program_digest(judge))


def check_preferred(value: object) -> str:
    """``value`` when it is ``First`` or ``Second``; else ContentError."""
    if value not in ("First", "Second"):
        raise ContentError(f"the judge answered {value!r}, not First or Second")
    return str(value)


def first_probability(logprobs: Any) -> float | None:
    """P(``First``) from the token log-probabilities of a judge's answer, or None when they do
    not show the answer.

    The answer's token is the first one after the last ``"preferred"`` key (JSON answers) or
    ``[[ ## preferred ## ]]`` marker (chat answers) that starts one of the two words; its
    alternatives among the top log-probabilities that start ``First`` or ``Second`` (a prefix
    of either word, quotes and spaces ignored) are weighed against each other. A server that
    sends no alternatives gives 1 or 0 for the word it chose.
    """
    import math

    content = logprobs.get("content") if isinstance(logprobs, dict) else getattr(logprobs, "content", None)
    if not content:
        return None
    tokens = [_get(entry, "token") or "" for entry in content]
    text = "".join(tokens)
    found = [text.rfind(m) + len(m) for m in ('"preferred"', "## preferred ##") if m in text]
    if not found:
        return None
    marker = max(found)
    offset = 0
    for entry, token in zip(content, tokens, strict=True):
        start, offset = offset, offset + len(token)
        if offset <= marker:
            continue
        word = token[max(0, marker - start):].strip().strip(':').strip().strip('"').strip()
        if not word or _side(word) is None:
            continue
        weights = {"First": 0.0, "Second": 0.0}
        for alt in _get(entry, "top_logprobs") or [{"token": token, "logprob": _get(entry, "logprob") or 0.0}]:
            side = _side((_get(alt, "token") or "").strip().strip('"').strip())
            if side is not None:
                weights[side] += math.exp(float(_get(alt, "logprob") or 0.0))
        total = weights["First"] + weights["Second"]
        if total <= 0:
            return 1.0 if _side(word) == "First" else 0.0
        return weights["First"] / total
    return None


def _get(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)


def _side(word: str) -> str | None:
    """Which answer a token starts: a non-empty prefix of exactly one of the two words."""
    first, second = "First".startswith(word) or word.startswith("First"), \
        "Second".startswith(word) or word.startswith("Second")
    if word and first != second:
        return "First" if first else "Second"
    return None
