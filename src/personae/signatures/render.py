"""Text layouts for inputs built from several records (histories and reasoning traces).

These are prompt text, so they live with the signatures. Long texts are clipped so that a
prompt fits small context windows: ``max_chars`` bounds each response or request, and
``budget`` the whole block (older entries are dropped first when it is exceeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["clip", "render_history", "render_trace", "render_traces"]


class _Pair(Protocol):
    @property
    def prompt(self) -> str: ...
    @property
    def chosen(self) -> str: ...
    @property
    def rejected(self) -> str: ...


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters at a word boundary, marked with an ellipsis."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut + " [...]"


def render_trace(index: int, prompt: str, response_a: str, response_b: str, preferred: str, reasoning: str,
                 *, max_chars: int = 600) -> str:
    """One verified choice: the request, both responses as shown, the choice (``A`` or ``B``) and why."""
    return (
        f"Choice {index}\n"
        f"Request: {clip(prompt, max_chars)}\n"
        f"Response A: {clip(response_a, max_chars)}\n"
        f"Response B: {clip(response_b, max_chars)}\n"
        f"Preferred: Response {preferred}\n"
        f"Why: {clip(reasoning, max_chars)}"
    )


def _fit(blocks: list[str], budget: int) -> str:
    kept: list[str] = []
    used = 0
    for block in reversed(blocks):  # newest first, so the most recent evidence survives
        if kept and used + len(block) > budget:
            break
        kept.append(block)
        used += len(block) + 2
    return "\n\n".join(reversed(kept))


def render_traces(traces: Sequence[str], *, budget: int = 12000) -> str:
    """Rendered traces joined oldest first, the oldest dropped until the block fits ``budget`` characters."""
    return _fit(list(traces), budget)


def render_history(pairs: Sequence[_Pair], *, max_chars: int = 400, budget: int = 8000) -> str:
    """A user's earlier choices, oldest first, for a judge that reads the raw history."""
    blocks = [
        f"Earlier choice {i}\nRequest: {clip(p.prompt, max_chars)}\n"
        f"Chosen: {clip(p.chosen, max_chars)}\nPassed over: {clip(p.rejected, max_chars)}"
        for i, p in enumerate(pairs, 1)
    ]
    return _fit(blocks, budget)
