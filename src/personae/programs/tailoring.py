"""The judge that compares two generators' responses for one persona, on one criterion."""

from __future__ import annotations

from typing import Any

import dspy

from personae.errors import ConfigError
from personae.programs._base import Ask, Program, Setting, Steps, refuse_unknown, require_text
from personae.programs.judges import Verdict, _checked_choice
from personae.signatures import TailoringPersonalizationJudge, TailoringQualityJudge

__all__ = ["CRITERIA", "TailoringJudge"]

CRITERIA = ("personalization", "quality")


def _criterion(value: Any) -> str:
    if value not in CRITERIA:
        raise ConfigError(f"unknown criterion {value!r}; choose from {', '.join(CRITERIA)}")
    return str(value)


class TailoringJudge(Program):
    """``TailoringJudge(criterion)(prompt=..., persona=..., response_a=..., response_b=...) -> Verdict``.

    ``criterion`` is ``personalization`` (which response suits the described user better; needs
    the persona) or ``quality`` (which is the better response, persona aside). The verdict's
    ``preferred`` is ``"A"`` or ``"B"``, with the judge's ``reasoning``.
    """

    criterion = Setting(_criterion)

    def __init__(self, criterion: str, *, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.criterion = criterion
        self.predict = dspy.ChainOfThought(self._signature())

    def _signature(self) -> type[dspy.Signature]:
        return TailoringPersonalizationJudge if self.criterion == "personalization" else TailoringQualityJudge

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> None:
        """Load a saved judge; a state saved for the other criterion rebuilds the predictor first."""
        saved = (state.get("program_settings") or {}).get("criterion")
        if saved is not None and saved != self.criterion:
            self.criterion = saved
            self.predict = dspy.ChainOfThought(self._signature())
        super().load_state(state, **kwargs)

    def forward(self, prompt: str | None = None, persona: str | None = None, response_a: str | None = None,
                response_b: str | None = None, **other: Any) -> Verdict:
        """Compare two responses on the judge's criterion."""
        refuse_unknown(type(self).__name__, ["prompt", "persona", "response_a", "response_b"], other)
        return self.run(self._steps(prompt, persona, response_a, response_b))  # type: ignore[no-any-return]

    async def aforward(self, prompt: str | None = None, persona: str | None = None, response_a: str | None = None,
                       response_b: str | None = None, **other: Any) -> Verdict:
        """:meth:`forward` on DSPy's async LM path."""
        refuse_unknown(type(self).__name__, ["prompt", "persona", "response_a", "response_b"], other)
        return await self.arun(self._steps(prompt, persona, response_a, response_b))  # type: ignore[no-any-return]

    def _steps(self, prompt: Any, persona: Any, response_a: Any, response_b: Any) -> Steps:
        name = type(self).__name__
        require_text(name, prompt=prompt, response_a=response_a, response_b=response_b)
        inputs = {"prompt": prompt, "response_a": response_a, "response_b": response_b}
        if self.criterion == "personalization":
            require_text(name, persona=persona)
            inputs["persona"] = persona
        pred = yield Ask(self.predict, inputs, check=_checked_choice)
        return Verdict(pred.preferred, str(pred.reasoning))
