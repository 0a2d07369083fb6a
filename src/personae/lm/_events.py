"""A finished answer as a stream of small text pieces, for engines that answer whole.

DSPy's stream listeners (``dspy.streamify``) follow an answer as it arrives and pick a
field's text out of it between its markers; an answer delivered as one piece gives them
nothing to stream. personae's engines get their answer whole (the embedded model, the
scripted LM, a chat server asked without server-sent events), so they replay it as it would
have arrived: word by word, each piece a text delta, then the end event with the usage.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

__all__ = ["piecewise_events", "piecewise_stream"]

_PIECE = re.compile(r"\s*\S+|\s+")


def piecewise_events(response: Any) -> Iterator[Any]:
    """The stream events of ``response`` (a ``dspy.lm15.Response``) with its text split into words."""
    from dspy.lm15 import StreamDeltaEvent, TextDelta, response_to_events

    for event in response_to_events(response):
        delta = getattr(event, "delta", None)
        if not isinstance(event, StreamDeltaEvent) or not isinstance(delta, TextDelta) or not delta.text:
            yield event
            continue
        for number, piece in enumerate(_PIECE.findall(delta.text)):
            yield StreamDeltaEvent(delta=TextDelta(
                text=piece, part_index=delta.part_index,
                logprobs=delta.logprobs if number == 0 else (),
                logprobs_complete=delta.logprobs_complete if number == 0 else True))


async def piecewise_stream(answer: Awaitable[Any]) -> AsyncIterator[Any]:
    """:func:`piecewise_events` of an awaited ``Response``: an async engine's ``stream``."""
    for event in piecewise_events(await answer):
        yield event
