"""Pairwise judges: default, persona-guided, profile (demographics) and memory (raw history).

Every judge is a chain-of-thought ``dspy.Module`` called with the pair's fields,
``judge(prompt=..., response_a=..., response_b=...)``, and answers a :class:`Verdict`:
``preferred`` (``"A"`` or ``"B"``), the judge's ``reasoning`` and, when the LM returned token
log-probabilities, the ``probability`` that the user prefers A. :func:`judge_pair` shows a
preference record in a given order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dspy

from personae.data import PreferenceRecord
from personae.errors import ConfigError, ContentError, DataError
from personae.programs._base import Ask, Program, Setting, Steps, refuse_unknown, require_text
from personae.signatures import (
    JudgeForPersona,
    JudgeWithHistory,
    JudgeWithPersona,
    JudgeWithProfile,
    PairwiseJudge,
    render_history,
)

__all__ = [
    "DefaultJudge", "Judge", "MemoryJudge", "PersonaAccuracyJudge", "PersonaJudge", "ProfileJudge", "Verdict",
    "check_preferred", "judge_digest", "judge_pair", "probability_of_a",
]


_UNSET: Any = object()


class Verdict(dspy.Prediction):
    """Which of two responses a user prefers: the one verdict of every judge, store and client.

    Fields:
        preferred: ``"A"`` (the first response given) or ``"B"``.
        reasoning: why, in the judge's words (for a reward model, the two rewards).
        probability: P(the user prefers A) when it is known (token log-probabilities, both
            orders of a pair, or a reward model), else None.

    A judgment by a :class:`personae.store.PersonaStore` adds ``version`` (the persona version
    used, None before the first), ``personalization`` (``persona``, ``memory`` for the user's raw
    choices, ``none``) and ``abstained`` (the probability fell short of the asked confidence).
    It is a ``dspy.Prediction``, so metrics, ``dspy.Evaluate`` and the optimizers take it as is.
    """

    def __init__(self, preferred: Any = _UNSET, reasoning: Any = _UNSET, probability: Any = _UNSET,
                 **fields: Any) -> None:
        given = {name: value for name, value in (("preferred", preferred), ("reasoning", reasoning),
                                                 ("probability", probability)) if value is not _UNSET}
        if isinstance(preferred, (dict, dspy.Example)) or "base" in fields:  # DSPy copying a prediction
            base = fields.pop("base", None) if "base" in fields else given.pop("preferred")
            super().__init__(base, **given, **fields)
            return
        super().__init__(**{"preferred": None, "reasoning": "", "probability": None, **given}, **fields)

    def __repr__(self) -> str:
        return "Verdict(" + ", ".join(f"{k}={v!r}" for k, v in self.items()) + ")"

    def to_dict(self) -> dict[str, Any]:
        """The verdict's fields as a plain dict (what the service sends)."""
        return dict(self.toDict())

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """How pydantic (and so FastAPI and the HTTP client) reads and writes a verdict: a JSON
        object of its fields, read back into a :class:`Verdict`."""
        from pydantic_core import core_schema as cs

        def optional(schema: Any) -> Any:
            return cs.typed_dict_field(cs.nullable_schema(schema), required=False)

        fields = cs.typed_dict_schema({
            "preferred": cs.typed_dict_field(cs.literal_schema(["A", "B"])),
            "reasoning": cs.typed_dict_field(cs.str_schema()),
            "probability": optional(cs.float_schema()),
            "version": optional(cs.int_schema()),
            "personalization": cs.typed_dict_field(cs.str_schema(), required=False),
            "abstained": cs.typed_dict_field(cs.bool_schema(), required=False),
        }, ref="Verdict")
        read = cs.no_info_after_validator_function(lambda data: cls(**data), fields)
        return cs.json_or_python_schema(
            json_schema=read, python_schema=cs.union_schema([cs.is_instance_schema(cls), read]),
            serialization=cs.plain_serializer_function_ser_schema(lambda verdict: verdict.to_dict(),
                                                                  return_schema=fields))


class Judge(Program):
    """Base of the pairwise judges: ``forward(prompt, response_a, response_b) -> Verdict``.

    Subclasses name their signature and what they know of the user (:meth:`user_inputs`);
    ``attempts`` answers are asked for before a call raises (see :class:`Program`).
    """

    signature: type[dspy.Signature] = PairwiseJudge
    user_field: str | None = None  # the signature's input that describes the user, if any

    def __init__(self, *, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.predict = dspy.ChainOfThought(self.signature)

    def user_inputs(self) -> dict[str, str]:
        """What this judge knows about the user, as signature inputs."""
        return {}

    def forward(self, prompt: str | None = None, response_a: str | None = None, response_b: str | None = None,
                **user: str) -> Verdict:
        """Judge one pair; ``user`` overrides what the judge knows (``persona=``, ``profile=``, ``history=``).

        Returns a :class:`Verdict` (``preferred`` ``"A"``/``"B"``, ``reasoning``, ``probability``).
        """
        return self.run(self._steps(prompt, response_a, response_b, user))  # type: ignore[no-any-return]

    async def aforward(self, prompt: str | None = None, response_a: str | None = None,
                       response_b: str | None = None, **user: str) -> Verdict:
        """:meth:`forward` on DSPy's async LM path (``await judge.acall(...)``)."""
        return await self.arun(self._steps(prompt, response_a, response_b, user))  # type: ignore[no-any-return]

    def _steps(self, prompt: Any, response_a: Any, response_b: Any, user: dict[str, Any]) -> Steps:
        name = type(self).__name__
        refuse_unknown(name, ["prompt", "response_a", "response_b", *([self.user_field] if self.user_field else [])],
                       user)
        require_text(name, prompt=prompt, response_a=response_a, response_b=response_b)
        known = {**self.user_inputs(), **user}
        if self.user_field is not None:
            if self.user_field not in known:
                raise DataError(f"{name} knows nothing of the user: give {self.user_field}= when building it or "
                                "calling it", source=f"{name} input", field=self.user_field)
            require_text(name, **{self.user_field: known[self.user_field]})
        pred = yield Ask(self.predict, {**known, "prompt": prompt, "response_a": response_a,
                                        "response_b": response_b}, check=_checked_choice)
        logprobs = pred.get("logprobs")
        probability = probability_of_a(logprobs) if logprobs else None
        return Verdict(pred.preferred, str(pred.reasoning), probability=probability)


def _checked_choice(pred: dspy.Prediction) -> dspy.Prediction:
    check_preferred(pred.preferred)
    return pred


def _described(name: str, field: str, value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{name}({field}=...) needs a non-empty text; leave it out to give it per call, "
                          "or use DefaultJudge to judge without knowing the user")
    return value


class DefaultJudge(Judge):
    """Judges with no knowledge of the user: the non-personalized baseline.

    ``judge(prompt=..., response_a=..., response_b=...) -> Verdict(preferred, reasoning, probability)``.
    """

    signature = PairwiseJudge


class PersonaJudge(Judge):
    """Judges for the user described by ``persona``.

    ``PersonaJudge(persona)(prompt=..., response_a=..., response_b=...) -> Verdict(preferred,
    reasoning, probability)``; built without a persona, it takes ``persona=`` with each call.
    An empty persona is refused (:class:`~personae.errors.ConfigError` when building,
    :class:`~personae.errors.DataError` when calling). ``attempts`` (3) answers are asked for
    before an unusable one raises :class:`~personae.errors.ContentError`.
    """

    signature = JudgeWithPersona
    user_field = "persona"
    persona = Setting()

    def __init__(self, persona: str | None = None, *, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.persona = _described(type(self).__name__, "persona", persona)

    def user_inputs(self) -> dict[str, str]:
        """``{"persona": ...}`` when the judge was built with one."""
        return {"persona": self.persona} if self.persona is not None else {}


class PersonaAccuracyJudge(PersonaJudge):
    """The persona-accuracy judge: a :class:`PersonaJudge` that reads the persona after the
    responses, so one record's chosen-side and rejected-side judgments in one order share
    their prompt up to the persona (a server with a prompt cache reads it once).

    ``PersonaAccuracyJudge(persona)(prompt=..., response_a=..., response_b=...) -> Verdict``.
    """

    signature = JudgeForPersona


class ProfileJudge(Judge):
    """Judges for a user known by self-reported demographics (``profile``).

    ``ProfileJudge(profile)(prompt=..., response_a=..., response_b=...) -> Verdict``.
    """

    signature = JudgeWithProfile
    user_field = "profile"
    profile = Setting()

    def __init__(self, profile: str | None = None, *, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.profile = _described(type(self).__name__, "profile", profile)

    def user_inputs(self) -> dict[str, str]:
        """``{"profile": ...}`` when the judge was built with one."""
        return {"profile": self.profile} if self.profile is not None else {}


class MemoryJudge(Judge):
    """Judges with the user's earlier choices in the prompt, verbatim (clipped to ``budget`` characters).

    ``MemoryJudge(history)(prompt=..., response_a=..., response_b=...) -> Verdict``;
    ``history`` is the user's earlier :class:`~personae.data.PreferenceRecord`s.
    """

    signature = JudgeWithHistory
    user_field = "history"
    history_text = Setting()

    def __init__(self, history: Sequence[PreferenceRecord] = (), *, budget: int = 8000, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        if isinstance(history, (str, bytes)):
            raise ConfigError("MemoryJudge(history=...) takes the user's earlier PreferenceRecords, not text")
        self.history_text = render_history(history, budget=budget) if history else ""

    def user_inputs(self) -> dict[str, str]:
        """``{"history": ...}``: the rendered earlier choices, when there are any."""
        return {"history": self.history_text} if self.history_text else {}


def judge_pair(judge: Judge, record: PreferenceRecord, *, chosen_first: bool, **user: str) -> Verdict:
    """Show ``record``'s two responses in the given order and return the :class:`Verdict`.

    With ``chosen_first`` the chosen response is ``A``; the judge was right when
    ``verdict.preferred == ("A" if chosen_first else "B")``.
    """
    a, b = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
    verdict: Verdict = judge(prompt=record.prompt, response_a=a, response_b=b, **user)
    return verdict


def judge_digest(judge: Judge) -> str:
    """A digest of what a judge's answers depend on: what it knows of the user (persona, profile,
    history) and its program (instructions, demonstrations). Judgments are reused from a ledger
    only when it matches."""
    import json

    from personae.programs._digest import program_digest
    from personae.runs import content_digest

    return content_digest(json.dumps(judge.user_inputs(), sort_keys=True, ensure_ascii=False), program_digest(judge))


def check_preferred(value: object) -> str:
    """``value`` when it is ``A`` or ``B``; else :class:`~personae.errors.ContentError`."""
    if value not in ("A", "B"):
        raise ContentError(f"the judge answered {value!r}, not A or B")
    return str(value)


def probability_of_a(logprobs: Any) -> float | None:
    """P(``A``) from the token log-probabilities of a judge's answer, or None when they do
    not show the answer.

    The answer's token is the first one after the last ``"preferred"`` key (JSON answers),
    ``[[ ## preferred ## ]]`` marker (chat answers) or ``<preferred>`` tag (XML answers) that is
    ``A`` or ``B`` (quotes and spaces ignored); its alternatives among the top log-probabilities
    that are ``A`` or ``B`` are weighed against each other. A server that sends no alternatives
    gives 1 or 0 for the answer it chose.
    """
    content = logprobs.get("content") if isinstance(logprobs, dict) else getattr(logprobs, "content", None)
    if not content:
        return None
    tokens = [_get(entry, "token") or "" for entry in content]
    text = "".join(tokens)
    found = [text.rfind(m) + len(m) for m in ('"preferred"', "## preferred ##", "<preferred>") if m in text]
    if not found:
        return None
    marker = max(found)
    offset = 0
    for entry, token in zip(content, tokens, strict=True):
        start, offset = offset, offset + len(token)
        if offset <= marker:
            continue
        word = _side(token[max(0, marker - start):])
        if word is None:
            continue
        weights = {"A": 0.0, "B": 0.0}
        for alt in _get(entry, "top_logprobs") or [{"token": token, "logprob": _get(entry, "logprob") or 0.0}]:
            side = _side(_get(alt, "token") or "")
            if side is not None:
                weights[side] += math.exp(float(_get(alt, "logprob") or 0.0))
        total = weights["A"] + weights["B"]
        if total <= 0:
            return 1.0 if word == "A" else 0.0
        return weights["A"] / total
    return None


def _get(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)


def _side(token: str) -> str | None:
    """Which answer a token is: ``A`` or ``B`` once quotes, colons and spaces are stripped."""
    word = token.strip().strip(":").strip().strip('"').strip()
    return word if word in ("A", "B") else None
