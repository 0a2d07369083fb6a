"""Signatures that write personas: from one preference pair, and from a user's history."""

from __future__ import annotations

import dspy

__all__ = ["InferPersona", "RevisePersona", "SynthesizePersona"]


class InferPersona(dspy.Signature):
    """Someone read the request below and chose one of two responses over the other.
    Work backwards from that choice: describe, in one specific sentence, the kind of person
    who would make it. Name the needs, values, background or style preferences that the
    chosen response meets and the other one misses. Do not restate the request, and do not
    copy phrases from either response."""

    prompt: str = dspy.InputField(desc="the request or conversation the two responses answer")
    chosen: str = dspy.InputField(desc="the response this person chose")
    rejected: str = dspy.InputField(desc="the response this person passed over")
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


class RevisePersona(dspy.Signature):
    """A profile of one person's preferences was written from their earlier choices. Below are
    new choices the same person made, each with an analysis of why. Revise the profile so that
    it predicts both the earlier and the new choices: keep what the new choices confirm, add
    patterns that they show and the profile misses, and correct or drop any statement that
    they contradict. Do not describe a single request, and do not lengthen the profile with
    details that predict nothing."""

    persona: str = dspy.InputField(desc="the current profile of this person's preferences")
    new_choices: str = dspy.InputField(
        desc="numbered new choices: the request, both responses, which one the person chose, and why"
    )
    revised_persona: str = dspy.OutputField(
        desc="the revised profile: three to six sentences in the third person ('The user ...'), about preferences"
    )
