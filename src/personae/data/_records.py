"""Record types: one pairwise preference, a user's history, and a loaded data set."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from personae.errors import DataError

__all__ = ["ANONYMOUS", "PreferenceData", "PreferenceRecord", "SkippedRecord", "Turn", "UserHistory"]

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
"""The user id :meth:`PreferenceData.by_user` gives records that have none."""


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: ``role`` is ``"user"``, ``"assistant"`` or ``"system"``."""

    role: str
    content: str


@dataclass
class PreferenceRecord:
    """One pairwise preference: the conversation so far, and the two responses to it.

    ``context`` has at least one turn and ends with the user's. ``metadata`` keeps every
    source column that has no field here, verbatim; ``raw`` is the source row as read.
    """

    context: list[Turn]
    chosen: str
    rejected: str
    user_id: str | None = None
    profile: str | None = None
    split: str | None = None
    record_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def prompt(self) -> str:
        """The context as one text: a lone user turn as is, several as ``Role: text`` blocks."""
        if len(self.context) == 1:
            return self.context[0].content
        return "\n\n".join(f"{turn.role.capitalize()}: {turn.content}" for turn in self.context)

    @property
    def prompt_key(self) -> str:
        """What groups the pairs of one prompt: the conversation id, else a hash of the prompt."""
        conversation = self.metadata.get("conversation_id")
        if conversation is not None and conversation != "":
            return str(conversation)
        import hashlib

        return hashlib.sha1(self.prompt.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-serialisable form (``raw`` left out); :meth:`from_dict` reverses it."""
        return {
            "record_id": self.record_id,
            "user_id": self.user_id,
            "profile": self.profile,
            "split": self.split,
            "context": [{"role": turn.role, "content": turn.content} for turn in self.context],
            "chosen": self.chosen,
            "rejected": self.rejected,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreferenceRecord:
        """Rebuild a record from :meth:`to_dict`'s output."""
        for key in ("context", "chosen", "rejected"):
            if key not in d:
                raise DataError("missing", source="PreferenceRecord.from_dict", field=key)
        try:
            context = [t if isinstance(t, Turn) else Turn(str(t["role"]), str(t["content"]))
                       for t in d["context"]]
        except (KeyError, TypeError) as exc:
            raise DataError(f"expected {{role, content}} turns: {exc!r}", source="PreferenceRecord.from_dict",
                            field="context") from None
        return cls(context, d["chosen"], d["rejected"], d.get("user_id"), d.get("profile"), d.get("split"),
                   d.get("record_id") or "", dict(d.get("metadata") or {}))


@dataclass
class UserHistory:
    """All records of one user, in source order."""

    user_id: str
    records: list[PreferenceRecord]
    profile: str | None = None


@dataclass(frozen=True)
class SkippedRecord:
    """A record ``load_preferences(..., skip_invalid=True)`` left out, and why."""

    source: str
    record: int
    field: str | None
    reason: str

    @property
    def kind(self) -> str:
        """A short category for summaries, e.g. ``missing 'chosen'`` or ``not valid JSON``."""
        if self.field is not None:
            return f"{'missing' if self.reason.startswith('missing') else 'invalid'} '{self.field}'"
        return self.reason.split(":", 1)[0]


class PreferenceData(Sequence[PreferenceRecord]):
    """The records of one source, with those skipped as invalid (``skipped``)."""

    def __init__(self, records: Iterable[PreferenceRecord] = (), *, skipped: Iterable[SkippedRecord] = (),
                 source: str = "") -> None:
        self.records: list[PreferenceRecord] = list(records)
        self.skipped: list[SkippedRecord] = list(skipped)
        self.source = source

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PreferenceRecord]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> PreferenceRecord: ...

    @overload
    def __getitem__(self, index: slice) -> PreferenceData: ...

    def __getitem__(self, index: int | slice) -> PreferenceRecord | PreferenceData:
        if isinstance(index, slice):
            return PreferenceData(self.records[index], source=self.source)
        return self.records[index]

    def __repr__(self) -> str:
        users = len({r.user_id for r in self.records})
        return (f"PreferenceData({len(self.records)} records, {users} users, "
                f"{len(self.skipped)} skipped, source={self.source!r})")

    def by_user(self) -> dict[str, UserHistory]:
        """Records grouped by user, users in order of first appearance.

        Records without a user id go under ``"anonymous"``. A user's profile is the first one
        any of their records carries.
        """
        users: dict[str, UserHistory] = {}
        for record in self.records:
            user_id = record.user_id if record.user_id is not None else ANONYMOUS
            history = users.get(user_id)
            if history is None:
                history = users[user_id] = UserHistory(user_id, [], record.profile)
            elif history.profile is None:
                history.profile = record.profile
            history.records.append(record)
        return users

    def skipped_summary(self) -> str:
        """One line on the records skipped, e.g. ``skipped 3 invalid records: 2 missing 'chosen', ...``."""
        if not self.skipped:
            return ""
        counts = Counter(skip.kind for skip in self.skipped)
        parts = ", ".join(f"{count} {kind}" for kind, count in counts.most_common())
        n = len(self.skipped)
        first = self.skipped[0]
        return (f"skipped {n} invalid record{'s' if n != 1 else ''}: {parts} "
                f"(first: {first.source}, record {first.record})")

    def skipped_lines(self, limit: int = 20) -> list[str]:
        """One line per skipped record, naming its source, record, field and reason, e.g.
        ``rows.jsonl, record 3, field 'chosen': expected a non-empty string, got null``; after
        ``limit`` of them, one ``... and N more`` line."""
        lines = []
        for skip in self.skipped[:limit]:
            reason = " ".join(skip.reason.split())
            if len(reason) > 200:
                reason = reason[:199] + "…"
            lines.append(str(DataError(reason, source=skip.source, record=skip.record, field=skip.field)))
        if len(self.skipped) > limit:
            lines.append(f"... and {len(self.skipped) - limit} more")
        return lines


_EARLIER_NAMES = {"context": "prompt", "first_response": "response_a", "second_response": "response_b",
                  "preferred_response": "chosen", "other_response": "rejected"}
_EARLIER_CHOICES = {"First": "A", "Second": "B"}


def current_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """A demonstration, trace or saved row written in the field names of earlier versions
    (``context``, ``first_response``/``second_response``, ``preferred_response``/``other_response``,
    ``preferred`` First/Second), in today's pair vocabulary (``prompt``, ``response_a``/``response_b``,
    ``chosen``/``rejected``, ``preferred`` A/B); one already current comes back unchanged. A field
    whose new name is taken already keeps its old one (a record's ``context`` beside its ``prompt``)."""
    out = {_EARLIER_NAMES.get(k, k) if _EARLIER_NAMES.get(k, k) not in values else k: v for k, v in values.items()}
    if out.get("preferred") in _EARLIER_CHOICES:
        out["preferred"] = _EARLIER_CHOICES[out["preferred"]]
    return out
