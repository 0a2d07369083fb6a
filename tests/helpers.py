"""Small builders shared by the tests."""

from __future__ import annotations

import json
import re
from typing import Any

from personae.data import PreferenceRecord, Turn


def record(i: int, *, prompt: str | None = None, chosen: str | None = None, rejected: str | None = None,
           user: str = "u1", **metadata: object) -> PreferenceRecord:
    return PreferenceRecord(
        context=[Turn("user", prompt or f"question {i}")],
        chosen=chosen or f"good answer {i}",
        rejected=rejected or f"bad answer {i}",
        user_id=user,
        record_id=f"r{i}",
        metadata=dict(metadata),
    )


def stub_answer(body: dict[str, Any]) -> tuple[int, str]:
    """An OpenAI-compatible stub's answer to the store's programs: a persona, a revised persona,
    or a verdict for the shorter response (for ``personae.testing.stub_server``)."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "revised_persona" in system:
        return 200, json.dumps({"reasoning": "r", "revised_persona": "Prefers short answers; revised."})
    if "preferred" not in system:
        return 200, json.dumps({"reasoning": "r", "persona": "Prefers short answers."})
    first = re.search(r"response_a ## \]\]\n(.*?)(?:\n|$)", user, re.S)
    second = re.search(r"response_b ## \]\]\n(.*?)(?:\n|$)", user, re.S)
    shorter = first is None or second is None or len(first.group(1)) <= len(second.group(1))
    return 200, json.dumps({"reasoning": "shorter wins", "preferred": "A" if shorter else "B"})
