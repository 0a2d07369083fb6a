"""Persona synthesis: one user's verified traces condensed into that user's persona."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dspy

from personae.data import current_fields
from personae.errors import DataError
from personae.programs._base import Ask, Program, Setting, Steps, refuse_unknown, require_text
from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.programs.verified_reasoning import Trace, as_traces
from personae.signatures import PERSONA_SYNTHESIS_DEMOS, RevisePersona, SynthesizePersona, render_trace, render_traces

__all__ = ["PersonaRevision", "PersonaSynthesis"]


class PersonaSynthesis(Program):
    """``PersonaSynthesis()(traces=[...]) -> Prediction(persona, reasoning)``.

    ``traces`` are a user's verified :class:`~personae.programs.Trace`s (or their dicts); an
    optimizer may pass the history already rendered as ``preference_history=`` instead. No
    traces, or text where traces belong, is refused with :class:`~personae.errors.DataError`.

    Args:
        budget: The most characters of rendered history (the newest traces are kept), so the
            prompt fits the model's context whatever the history's length.
        max_chars: The most characters of each text in a trace.
        demos: Worked examples (dicts of the signature's fields plus ``reasoning``); by default
            the project's one short example, ``[]`` for none.
        attempts: Answers asked for before the call raises: an answer that repeats a worked
            example (:class:`DemoCopyError`) or describes nobody (:class:`NotAPersonaError`) is
            asked again on a fresh rollout.
    """

    budget = Setting()
    max_chars = Setting()

    def __init__(self, *, budget: int = 12000, max_chars: int = 600,
                 demos: Sequence[Mapping[str, str]] | None = None, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.budget = budget
        self.max_chars = max_chars
        self.synthesize = dspy.ChainOfThought(SynthesizePersona)
        examples = PERSONA_SYNTHESIS_DEMOS if demos is None else demos
        self.synthesize.predict.demos = [dspy.Example(**current_fields(dict(d))) for d in examples]

    def render(self, traces: Sequence[Trace]) -> str:
        """``traces`` as the ``preference_history`` text the signature reads (within ``budget``)."""
        blocks = [
            render_trace(i, t.prompt, t.response_a, t.response_b, t.preferred, t.reasoning, max_chars=self.max_chars)
            for i, t in enumerate(as_traces(traces, program=type(self).__name__), 1)
        ]
        return render_traces(blocks, budget=self.budget)

    def forward(self, traces: Sequence[Trace] | None = None, preference_history: str | None = None,
                **other: Any) -> dspy.Prediction:
        """The persona from ``traces`` (or from a rendered ``preference_history``)."""
        refuse_unknown(type(self).__name__, ["traces", "preference_history"], other)
        return self.run(self._steps(self._history(traces, preference_history)))

    async def aforward(self, traces: Sequence[Trace] | None = None, preference_history: str | None = None,
                       **other: Any) -> dspy.Prediction:
        """:meth:`forward` on DSPy's async LM path."""
        refuse_unknown(type(self).__name__, ["traces", "preference_history"], other)
        return await self.arun(self._steps(self._history(traces, preference_history)))

    def _history(self, traces: Any, preference_history: Any) -> str:
        name = type(self).__name__
        if preference_history is not None:
            require_text(name, preference_history=preference_history)
            return str(preference_history)
        if traces is None:
            raise DataError("give the user's verified traces (traces=) or a rendered history (preference_history=)",
                            source=f"{name} input", field="traces")
        if not as_traces(traces, program=name):
            raise DataError("no verified traces: there is nothing to write a persona from", source=f"{name} input",
                            field="traces")
        return self.render(traces)

    def _shown(self) -> list[str]:
        return [str(d.get("persona", "")) for d in self.synthesize.predict.demos]

    def _steps(self, history: str) -> Steps:
        shown = self._shown()
        persona, reasoning = yield Ask(self.synthesize, {"preference_history": history},
                                       check=lambda pred: _persona(pred, "persona", shown))
        return dspy.Prediction(persona=persona, reasoning=reasoning)


class PersonaRevision(PersonaSynthesis):
    """``PersonaRevision()(persona=..., traces=[...]) -> Prediction(persona, reasoning)``: an
    existing persona revised with new verified traces, instead of synthesized again from the
    whole history.

    It renders traces and checks answers like :class:`PersonaSynthesis` (the same worked
    examples count as echoes). Without a persona it writes one from the new traces; without
    traces there is nothing to revise and :class:`~personae.errors.DataError` says so.
    """

    def __init__(self, *, budget: int = 8000, max_chars: int = 600, attempts: int = 3) -> None:
        super().__init__(budget=budget, max_chars=max_chars, attempts=attempts)
        self.revise = dspy.ChainOfThought(RevisePersona)

    def forward(self, persona: str | None = None, traces: Sequence[Trace] | None = None,  # type: ignore[override]
                preference_history: str | None = None, **other: Any) -> dspy.Prediction:
        """``persona`` revised with ``traces`` (or a rendered ``preference_history`` of new choices)."""
        refuse_unknown(type(self).__name__, ["persona", "traces", "preference_history"], other)
        return self.run(self._revision(persona, self._history(traces, preference_history)))

    async def aforward(self, persona: str | None = None,  # type: ignore[override]
                       traces: Sequence[Trace] | None = None, preference_history: str | None = None,
                       **other: Any) -> dspy.Prediction:
        """:meth:`forward` on DSPy's async LM path."""
        refuse_unknown(type(self).__name__, ["persona", "traces", "preference_history"], other)
        return await self.arun(self._revision(persona, self._history(traces, preference_history)))

    def _revision(self, persona: Any, choices: str) -> Steps:
        if persona is not None and not isinstance(persona, str):
            require_text(type(self).__name__, persona=persona)
        if not persona or not persona.strip():  # nothing to revise: write one from the new choices
            return (yield from self._steps(choices))
        shown = self._shown()
        revised, reasoning = yield Ask(self.revise, {"persona": persona, "new_choices": choices},
                                       check=lambda pred: _persona(pred, "revised_persona", shown))
        return dspy.Prediction(persona=revised, reasoning=reasoning)


def _persona(pred: dspy.Prediction, field: str, shown: list[str]) -> tuple[str, str]:
    persona = str(pred.get(field) or "").strip()
    if copies_demo(persona, shown):
        raise DemoCopyError(f"the persona repeats a worked example: {persona[:80]!r}")
    if not_a_persona(persona):
        raise NotAPersonaError(f"the answer is not a persona: {persona[:40]!r}")
    return persona, str(pred.reasoning)
