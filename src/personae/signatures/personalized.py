"""Prompt text of a personalized judge and of the generation prompt exported from it."""

from __future__ import annotations

__all__ = ["generation_system_prompt", "personalized_instructions"]


def personalized_instructions(base: str, persona: str) -> str:
    """A judge's instructions with the user's persona appended."""
    if not persona.strip():
        return base
    return (
        f"{base}\n\nWhat is known about this user's preferences:\n{persona.strip()}\n\n"
        "Judge as this user would, not as an average reader would."
    )


def generation_system_prompt(persona: str) -> str:
    """A system prompt that asks an assistant to write for the user described by ``persona``
    (a plain one when nothing is known about the user yet)."""
    if not persona.strip():
        return ("You are a helpful assistant. Answer the user's requests correctly and safely, "
                "clearly and at a length that fits the request.")
    return (
        "You are a helpful assistant writing for one particular user. What is known about their "
        f"preferences:\n{persona.strip()}\n\n"
        "Answer their requests correctly and safely, in the way this user prefers: match the length, "
        "structure, tone and level of detail they favour."
    )
