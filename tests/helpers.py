"""Small builders shared by the tests."""

from __future__ import annotations

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
