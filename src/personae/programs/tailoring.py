"""The judge that compares two generators' responses for one persona, on one criterion."""

from __future__ import annotations

import dspy

from personae.errors import ConfigError

__all__ = ["CRITERIA", "TailoringJudge"]

CRITERIA = ("personalization", "quality")


class TailoringJudge(dspy.Module):
    """Judges two responses on one criterion: ``personalization`` (needs the persona) or ``quality``."""

    def __init__(self, criterion: str) -> None:
        super().__init__()
        from personae.signatures.tailoring import TailoringPersonalizationJudge, TailoringQualityJudge

        if criterion not in CRITERIA:
            raise ConfigError(f"unknown criterion {criterion!r}; choose from {', '.join(CRITERIA)}")
        self.criterion = criterion
        signature = TailoringPersonalizationJudge if criterion == "personalization" else TailoringQualityJudge
        self.predict = dspy.ChainOfThought(signature)

    def forward(self, prompt: str, persona: str, first_response: str, second_response: str) -> dspy.Prediction:
        inputs = {"prompt": prompt, "first_response": first_response, "second_response": second_response}
        if self.criterion == "personalization":
            inputs["persona"] = persona
        pred = self.predict(**inputs)
        return dspy.Prediction(preferred=pred.preferred, reasoning=pred.reasoning)
