"""Signatures that write personas: from one preference pair, and from a user's history."""

from __future__ import annotations

import dspy

__all__ = ["InferPersona", "SynthesizePersona"]


class InferPersona(dspy.Signature):
    """Someone read the request below and chose one of two responses over the other.
    Work backwards from that choice: describe, in one specific sentence, the kind of person
    who would make it. Name the needs, values, background or style preferences that the
    chosen response meets and the other one misses. Do not restate the request, and do not
    copy phrases from either response."""

    context: str = dspy.InputField(desc="the request or conversation the two responses answer")
    preferred_response: str = dspy.InputField(desc="the response this person chose")
    other_response: str = dspy.InputField(desc="the response this person passed over")
    persona: str = dspy.OutputField(
        desc="one sentence starting 'The user', under 40 words, describing who would make this choice"
    )


class SynthesizePersona(dspy.Signature):
    """Below are choices one person made between pairs of responses, each with an analysis of
    why they chose as they did. Write a short profile of this person's preferences that would
    let someone predict their future choices: what they value in an answer (length, structure,
    tone, depth, caution, humour, expertise), what they dislike, and any topics or background
    that shape their taste. Keep only patterns that recur across several choices; say nothing
    about a single request."""

    preference_history: str = dspy.InputField(
        desc="numbered past choices: the request, both responses, which one the person chose, and why"
    )
    persona: str = dspy.OutputField(
        desc="three to six sentences in the third person ('The user ...'), about preferences, not topics"
    )
