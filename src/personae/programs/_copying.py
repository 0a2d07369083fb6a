"""Catching a persona that repeats a worked example instead of describing the user.

Small models often answer a few-shot prompt by echoing the demonstration's output. A persona
that shares most of its word sequences with a demonstration's persona describes the example,
not the data, so programs treat it like an unparseable answer: they try again with a fresh
sample and, if every attempt echoes, say so instead of returning it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["DemoCopyError", "copies_demo"]

_WORD = re.compile(r"[a-z0-9]+")


class DemoCopyError(ValueError):
    """The model's answer repeats a demonstration's output."""


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def copies_demo(text: str, demo_outputs: Iterable[str], *, n: int = 4, threshold: float = 0.6) -> bool:
    """True when at least ``threshold`` of ``text``'s word ``n``-grams occur in one demo output."""
    mine = _grams(text, n)
    if not mine:
        return False
    for demo in demo_outputs:
        theirs = _grams(demo, n)
        if theirs and len(mine & theirs) / len(mine) >= threshold:
            return True
    return False
