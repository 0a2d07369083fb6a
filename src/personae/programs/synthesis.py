"""Persona synthesis: one user's verified traces condensed into that user's persona."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dspy

from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.programs.verified_reasoning import Trace
from personae.signatures import PERSONA_SYNTHESIS_DEMOS, RevisePersona, SynthesizePersona, render_trace, render_traces

__all__ = ["PersonaRevision", "PersonaSynthesis"]


class PersonaSynthesis(dspy.Module):
    """``forward(traces) -> Prediction(persona)``.

    ``budget`` bounds the rendered history in characters (the newest traces are kept), so
    the prompt fits the model's context whatever the history's length. ``demos`` are worked
    examples (dicts of the signature's fields plus ``reasoning``); by default the project's
    one short example, ``[]`` for none. Like :class:`PersonaInference`, an answer that repeats a
    worked example raises :class:`DemoCopyError` and one that describes nobody
    :class:`NotAPersonaError`: content failures that callers retry on a fresh sample with
    :class:`~personae.runs.RetryPolicy`.
    """

    def __init__(self, *, budget: int = 12000, max_chars: int = 600,
                 demos: Sequence[Mapping[str, str]] | None = None) -> None:
        super().__init__()
        self.budget = budget
        self.max_chars = max_chars
        self.synthesize = dspy.ChainOfThought(SynthesizePersona)
        examples = PERSONA_SYNTHESIS_DEMOS if demos is None else demos
        self.synthesize.predict.demos = [dspy.Example(**dict(d)) for d in examples]

    def render(self, traces: Sequence[Trace]) -> str:
        blocks = [
            render_trace(i, t.context, t.first_response, t.second_response, t.chosen, t.reasoning,
                         max_chars=self.max_chars)
            for i, t in enumerate(traces, 1)
        ]
        return render_traces(blocks, budget=self.budget)

    def forward(self, traces: Sequence[Trace] = (), preference_history: str | None = None) -> dspy.Prediction:
        """The persona from ``traces``, or from a history already rendered (optimizers pass text)."""
        history = preference_history if preference_history is not None else self.render(traces)
        if not history.strip():
            return dspy.Prediction(persona="", reasoning="no verified traces")
        shown = [str(d.get("persona", "")) for d in self.synthesize.predict.demos]
        pred = self.synthesize(preference_history=history)
        persona = str(pred.persona).strip()
        if copies_demo(persona, shown):
            raise DemoCopyError(f"the persona repeats a worked example: {persona[:80]!r}")
        if not_a_persona(persona):
            raise NotAPersonaError(f"the answer is not a persona: {persona[:40]!r}")
        return dspy.Prediction(persona=persona, reasoning=str(pred.reasoning))


class PersonaRevision(PersonaSynthesis):
    """``forward(persona, traces) -> Prediction(persona)``: an existing persona revised with new
    verified traces, instead of synthesized again from the whole history.

    It renders traces like :class:`PersonaSynthesis` and applies the same checks to the answer
    (:class:`DemoCopyError` when it repeats a worked example of persona synthesis,
    :class:`NotAPersonaError` when it describes nobody). With no traces the persona comes back
    unchanged and no LM is called.
    """

    def __init__(self, *, budget: int = 8000, max_chars: int = 600) -> None:
        super().__init__(budget=budget, max_chars=max_chars)
        self.revise = dspy.ChainOfThought(RevisePersona)

    def forward(self, persona: str = "", traces: Sequence[Trace] = (),  # type: ignore[override]
                preference_history: str | None = None) -> dspy.Prediction:
        choices = preference_history if preference_history is not None else self.render(traces)
        if not choices.strip():
            return dspy.Prediction(persona=persona, reasoning="no new verified traces")
        if not persona.strip():  # nothing to revise: write one from the new choices
            return super().forward(preference_history=choices)
        pred = self.revise(persona=persona, new_choices=choices)
        revised = str(pred.revised_persona).strip()
        shown = [str(d.get("persona", "")) for d in self.synthesize.predict.demos]
        if copies_demo(revised, shown):
            raise DemoCopyError(f"the revised persona repeats a worked example: {revised[:80]!r}")
        if not_a_persona(revised):
            raise NotAPersonaError(f"the answer is not a persona: {revised[:40]!r}")
        return dspy.Prediction(persona=revised, reasoning=str(pred.reasoning))
