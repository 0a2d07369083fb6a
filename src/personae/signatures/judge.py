"""Pairwise judges: which of two responses does this user prefer?

Every judge reads ``prompt``, ``response_a`` and ``response_b`` and answers ``preferred``:
``A`` or ``B``; programs add a reasoning field in front of the answer (chain of thought). The
variants differ only in what they know about the user.
"""

from __future__ import annotations

from typing import Literal

import dspy

__all__ = [
    "Choice", "JudgeForPersona", "JudgeWithHistory", "JudgeWithPersona", "JudgeWithProfile", "PairwiseJudge",
]

Choice = Literal["A", "B"]
"""A judge's answer: which response the user prefers."""

_ANSWER = "A if the user prefers response A, B if they prefer response B"


class PairwiseJudge(dspy.Signature):
    """Two assistant responses answer the same request. Decide which one the user who wrote
    the request would prefer."""

    prompt: str = dspy.InputField(desc="the user's request or conversation so far")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    preferred: Choice = dspy.OutputField(desc=_ANSWER)


class JudgeWithPersona(dspy.Signature):
    """Two assistant responses answer the same request. The user who wrote it is described
    below. Decide which response this particular user would prefer, judging by their
    described tastes rather than by what most people would like."""

    persona: str = dspy.InputField(desc="a description of this user's preferences")
    prompt: str = dspy.InputField(desc="the user's request or conversation so far")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    preferred: Choice = dspy.OutputField(desc=_ANSWER)


class JudgeForPersona(dspy.Signature):
    """Two assistant responses answer the same request, and a persona describes one user.
    Decide which response this particular user would prefer, judging by the described tastes
    rather than by what most people would like."""

    # The persona comes last: the judgments of one record's two personas then share the
    # prompt up to it, which a server's prompt cache computes once.
    prompt: str = dspy.InputField(desc="the user's request or conversation so far")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    persona: str = dspy.InputField(desc="a description of this user's preferences")
    preferred: Choice = dspy.OutputField(desc=_ANSWER)


class JudgeWithProfile(dspy.Signature):
    """Two assistant responses answer the same request. The user's self-reported background
    is given below. Decide which response this user would prefer, taking their background
    into account where it matters."""

    profile: str = dspy.InputField(desc="the user's demographics and background, as they reported them")
    prompt: str = dspy.InputField(desc="the user's request or conversation so far")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    preferred: Choice = dspy.OutputField(desc=_ANSWER)


class JudgeWithHistory(dspy.Signature):
    """Two assistant responses answer the same request. Some earlier choices of the same user
    are listed below. Decide which response this user would prefer, by what their earlier
    choices show about their taste."""

    history: str = dspy.InputField(desc="the user's earlier choices: request, chosen and passed-over responses")
    prompt: str = dspy.InputField(desc="the user's request or conversation so far")
    response_a: str = dspy.InputField(desc="candidate response A")
    response_b: str = dspy.InputField(desc="candidate response B")
    preferred: Choice = dspy.OutputField(desc=_ANSWER)
