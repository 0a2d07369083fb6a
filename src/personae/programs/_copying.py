"""Catching a persona that repeats a worked example, or that is no description at all.

Small models often answer a few-shot prompt by echoing the demonstration's output. A persona
that shares most of its word sequences with a demonstration's persona describes the example,
not the data, so programs treat it like an unparseable answer: they try again with a fresh
sample and, if every attempt echoes, say so instead of returning it. The same goes for an
answer with fewer than two words or five letters (a stray bracket, "N/A"), which small
models also produce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from personae.errors import ContentError

__all__ = ["DemoCopyError", "NotAPersonaError", "copies_demo", "not_a_persona"]

_WORD = re.compile(r"[a-z0-9]+")
_LETTERS = re.compile(r"[^\W\d_]+")


class NotAPersonaError(ContentError):
    """The model's answer has too few words to describe anybody."""


def not_a_persona(text: str) -> bool:
    """True when ``text`` holds fewer than two words, or fewer than five letters in all."""
    words = _LETTERS.findall(text)
    return len(words) < 2 or sum(map(len, words)) < 5


class DemoCopyError(ContentError):
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
