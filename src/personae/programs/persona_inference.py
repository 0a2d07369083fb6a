"""Persona inference: who would choose each side of a preference pair.

Abductive reasoning over one pair. The chosen-side persona explains why someone would
prefer ``chosen``; running the same predictor with the two responses swapped gives the
rejected-side persona, the person who would have preferred ``rejected``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import dspy

from personae.data import PreferenceRecord, current_fields
from personae.errors import ConfigError
from personae.programs._base import Ask, Program, Setting, Steps, refuse_unknown, require_text
from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.signatures import PERSONA_INFERENCE_DEMOS, InferPersona

__all__ = ["PersonaInference"]

SIDES = ("chosen", "rejected")


class PersonaInference(Program):
    """``PersonaInference()(prompt=..., chosen=..., rejected=...) -> Prediction(chosen_persona, rejected_persona)``.

    Args:
        sides: ``("chosen",)`` or ``("rejected",)`` when only one persona is needed (the other
            comes back as None); both by default. In async code the two sides are asked at once.
        demos: Few-shot examples (dicts of :class:`~personae.signatures.InferPersona` fields); by
            default the project's general-purpose ones, ``[]`` for none.
        attempts: Answers asked for per side before the call raises. A persona that repeats a
            demonstration's (:class:`DemoCopyError`) or describes nobody (:class:`NotAPersonaError`)
            is asked again on a fresh rollout; when every attempt fails, the call raises that
            :class:`~personae.errors.ContentError` with what each attempt answered in ``tried``.
    """

    sides = Setting(lambda value: _sides(value))

    def __init__(self, sides: Sequence[str] = SIDES, demos: Sequence[Mapping[str, str]] | None = None, *,
                 attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.sides = sides
        self.infer = dspy.Predict(InferPersona)
        examples = PERSONA_INFERENCE_DEMOS if demos is None else demos
        self.infer.demos = [dspy.Example(**current_fields(dict(d))) for d in examples]

    def forward(self, prompt: str | None = None, chosen: str | None = None, rejected: str | None = None,
                **other: Any) -> dspy.Prediction:
        """The personas of a pair: ``Prediction(chosen_persona, rejected_persona)`` (None for a side not asked)."""
        refuse_unknown(type(self).__name__, ["prompt", "chosen", "rejected"], other)
        return self.run(self._steps(prompt, chosen, rejected))

    async def aforward(self, prompt: str | None = None, chosen: str | None = None, rejected: str | None = None,
                       **other: Any) -> dspy.Prediction:
        """:meth:`forward` on DSPy's async LM path, both sides at once."""
        refuse_unknown(type(self).__name__, ["prompt", "chosen", "rejected"], other)
        return await self.arun(self._steps(prompt, chosen, rejected))

    def for_record(self, record: PreferenceRecord) -> dspy.Prediction:
        """The personas of a :class:`~personae.data.PreferenceRecord` (its prompt, chosen and rejected)."""
        return self(prompt=record.prompt, chosen=record.chosen, rejected=record.rejected)

    def _steps(self, prompt: Any, chosen: Any, rejected: Any) -> Steps:
        require_text(type(self).__name__, prompt=prompt, chosen=chosen, rejected=rejected)
        shown = [str(d.get("persona", "")) for d in self.infer.demos]
        asks = [Ask(self.infer, {"prompt": prompt, "chosen": preferred, "rejected": other},
                    check=functools.partial(_persona, side=side, shown=shown))
                for side, preferred, other in (("chosen", chosen, rejected), ("rejected", rejected, chosen))
                if side in self.sides]
        personas = yield asks
        out: dict[str, str | None] = {"chosen_persona": None, "rejected_persona": None}
        for side, persona in zip([s for s in SIDES if s in self.sides], personas, strict=True):
            out[f"{side}_persona"] = persona
        return dspy.Prediction(**out)


def _sides(sides: Sequence[str]) -> tuple[str, ...]:
    if isinstance(sides, str):
        sides = (sides,)
    unknown = set(sides) - set(SIDES)
    if unknown or not sides:
        raise ConfigError(f"sides must be drawn from 'chosen' and 'rejected', got {tuple(sides)!r}")
    return tuple(s for s in SIDES if s in sides)


def _persona(pred: dspy.Prediction, side: str, shown: list[str]) -> str:
    persona = str(pred.persona).strip()
    if copies_demo(persona, shown):  # an echo of an example, not a reading of this pair
        raise DemoCopyError(f"the {side}-side persona repeats a worked example: {persona[:80]!r}")
    if not_a_persona(persona):
        raise NotAPersonaError(f"the {side}-side answer is not a persona: {persona[:40]!r}")
    return persona
