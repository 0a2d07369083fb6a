"""Persona tailoring: the generator's prompt format and the judges that compare two generators.

The generator of "Whose Boat Does it Float?" is trained on ``Prompt / Persona / Response``
texts (:func:`tailored_prompt`). Two generators' responses to one prompt are compared by a
judge twice, once per order, on two criteria: *personalization* (which response suits the
described user better) and *quality* (which is the better response, persona aside).
"""

from __future__ import annotations

import dspy

from personae.signatures.judge import Choice

__all__ = ["TAILORED_PROMPT", "TailoringPersonalizationJudge", "TailoringQualityJudge", "tailored_prompt"]

TAILORED_PROMPT = "Prompt: {prompt}\nPersona: {persona}\nResponse:"
"""The text a tailored generator continues; the response follows after one space."""


def tailored_prompt(prompt: str, persona: str) -> str:
    """The generator's input for ``prompt`` written for the user described by ``persona``."""
    return TAILORED_PROMPT.format(prompt=prompt.strip(), persona=persona.strip())


class TailoringPersonalizationJudge(dspy.Signature):
    """Two assistant responses answer the same request from the user described below. Decide
    which response is better tailored to this user: which one addresses their stated
    preferences, needs and background. Do not prefer a response for being longer."""

    persona: str = dspy.InputField(desc="a description of the user who wrote the request and their preferences")
    prompt: str = dspy.InputField(desc="the user's request")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    preferred: Choice = dspy.OutputField(desc="A if response A suits this user better, B otherwise")


class TailoringQualityJudge(dspy.Signature):
    """Two assistant responses answer the same request. Decide which response is of higher
    quality: more helpful, correct, clear and harmless. Do not prefer a response for being
    longer."""

    prompt: str = dspy.InputField(desc="the user's request")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    preferred: Choice = dspy.OutputField(desc="A if response A is better, B otherwise")
