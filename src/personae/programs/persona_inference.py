"""Persona inference: who would choose each side of a preference pair.

Abductive reasoning over one pair. The chosen-side persona explains why someone would
prefer ``chosen``; running the same predictor with the two responses swapped gives the
rejected-side persona, the person who would have preferred ``rejected``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dspy

from personae.data import PreferenceRecord
from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.signatures import PERSONA_INFERENCE_DEMOS, InferPersona

__all__ = ["PersonaInference"]


class PersonaInference(dspy.Module):
    """``(context, chosen, rejected) -> Prediction(chosen_persona, rejected_persona)``.

    ``sides`` limits the work to ``("chosen",)`` or ``("rejected",)`` when only one is needed.
    ``demos`` are few-shot examples (dicts of :class:`InferPersona` fields); by default the
    project's general-purpose ones, ``[]`` for none. A persona that repeats a demonstration's
    raises :class:`DemoCopyError`, which batch runs retry with a fresh sample like any failure.
    """

    def __init__(self, sides: tuple[str, ...] = ("chosen", "rejected"),
                 demos: Sequence[Mapping[str, str]] | None = None) -> None:
        super().__init__()
        unknown = set(sides) - {"chosen", "rejected"}
        if unknown or not sides:
            raise ValueError(f"sides must be drawn from 'chosen' and 'rejected', got {sides!r}")
        self.sides = tuple(sides)
        self.infer = dspy.Predict(InferPersona)
        examples = PERSONA_INFERENCE_DEMOS if demos is None else demos
        self.infer.demos = [dspy.Example(**dict(d)) for d in examples]

    def forward(self, context: str, chosen: str, rejected: str) -> dspy.Prediction:
        out: dict[str, str | None] = {"chosen_persona": None, "rejected_persona": None}
        shown = [str(d.get("persona", "")) for d in self.infer.demos]
        for side, preferred, other in (("chosen", chosen, rejected), ("rejected", rejected, chosen)):
            if side not in self.sides:
                continue
            persona = str(self.infer(context=context, preferred_response=preferred, other_response=other).persona)
            if copies_demo(persona, shown):  # an echo of an example, not a reading of this pair
                raise DemoCopyError(f"the {side}-side persona repeats a worked example: {persona[:80]!r}")
            if not_a_persona(persona):
                raise NotAPersonaError(f"the {side}-side answer is not a persona: {persona[:40]!r}")
            out[f"{side}_persona"] = persona
        return dspy.Prediction(**out)

    def for_record(self, record: PreferenceRecord) -> dspy.Prediction:
        return self(context=record.prompt, chosen=record.chosen, rejected=record.rejected)
