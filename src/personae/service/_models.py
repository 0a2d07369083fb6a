"""The HTTP API's request and error bodies, and its limits.

Responses are the store's own result types (:class:`~personae.store.PersonaState`,
:class:`~personae.programs.Verdict`, ...): FastAPI reads their dataclass fields into the
OpenAPI schema, and :mod:`personae.client` reads the JSON back into the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from personae.data import PreferenceRecord, Turn
from personae.errors import ERROR_KINDS
from personae.store import PersonaVersion

__all__ = ["MAX_CANDIDATES", "MAX_PREFERENCES", "MAX_TEXT_CHARS", "MAX_TURNS", "USER_ID_PATTERN",
           "AddPreferencesRequest", "ErrorBody", "ErrorDetail", "FieldError", "Forgotten", "GenerationPrompt",
           "Health", "HistoryOut", "JudgeRequest", "PreferenceIn", "PreferenceList", "RankRequest", "StoredPreference",
           "TurnIn", "UserList",
           "prompt_text"]

MAX_TEXT_CHARS = 32_000      # a prompt, response or turn
MAX_TURNS = 64               # turns of one conversation
MAX_PREFERENCES = 256        # preferences in one request
MAX_CANDIDATES = 64          # drafts in one ranking (the store's own limit)
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$"
"""A user id in a path: letters, digits and ``._:@+=-``, starting with a letter or digit, at most
128 characters (so e-mail addresses, UUIDs and ``tenant:user`` keys fit)."""

_ID_PATTERN = r"^[\x20-\x7e]{1,256}$"   # printable ASCII: a client's preference id

Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S")]
"""A prompt or response: up to MAX_TEXT_CHARS characters, not blank."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TurnIn(_Body):
    role: Literal["user", "assistant", "system"]
    content: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]


Conversation = Annotated[list[TurnIn], Field(min_length=1, max_length=MAX_TURNS)]


class PreferenceIn(_Body):
    """One pairwise choice: the prompt (or the conversation so far) and the two responses."""

    id: Annotated[str | None, Field(pattern=_ID_PATTERN, description=(
        "the client's id for this preference: a retry with the same id is a no-op (without one, "
        "the content is the id)"))] = None
    prompt: Text | None = Field(None, description="the user's prompt (or give context)")
    context: Conversation | None = Field(None, description="the conversation so far, ending with the user's turn")
    chosen: Text
    rejected: Text
    conversation_id: Annotated[str | None, Field(pattern=_ID_PATTERN, description=(
        "groups the pairs of one conversation (fits never split them across train and validation)"))] = None

    @model_validator(mode="after")
    def _one_context(self) -> PreferenceIn:
        if (self.prompt is None) == (self.context is None):
            raise ValueError("give either prompt or context, not both or neither")
        return self

    def to_record(self) -> dict[str, Any]:
        turns = [{"role": t.role, "content": t.content} for t in self.context] if self.context is not None \
            else [{"role": "user", "content": self.prompt or ""}]
        return {"record_id": self.id or "", "context": turns, "chosen": self.chosen, "rejected": self.rejected,
                "metadata": {"conversation_id": self.conversation_id} if self.conversation_id else {}}


class AddPreferencesRequest(_Body):
    preferences: Annotated[list[PreferenceIn], Field(min_length=1, max_length=MAX_PREFERENCES)]


class _Prompted(_Body):
    prompt: Text | Conversation = Field(description="the prompt, or the conversation so far",
                                        validation_alias=AliasChoices("prompt", "context"))

    @model_validator(mode="after")
    def _prompt_has_text(self) -> _Prompted:
        if not prompt_text(self.prompt).strip():
            raise ValueError("the prompt has no text")
        return self


class JudgeRequest(_Prompted):
    """Two responses to judge for a user (``context``, ``a`` and ``b``, the names of earlier
    versions, are read too)."""

    response_a: Text = Field(description="response A", validation_alias=AliasChoices("response_a", "a"))
    response_b: Text = Field(description="response B", validation_alias=AliasChoices("response_b", "b"))
    abstain_below: float | None = Field(None, ge=0.5, le=1.0, description=(
        "abstain (abstained=true) when the preferred side's probability is under this"))


class RankRequest(_Prompted):
    """Drafts to rank for a user (``context`` is read as ``prompt``, as earlier versions named it)."""

    candidates: Annotated[list[Text], Field(min_length=1, max_length=MAX_CANDIDATES)]


def prompt_text(prompt: str | list[TurnIn]) -> str:
    """The prompt as the store reads it: a text as is, turns rendered as a stored
    preference's prompt is (:attr:`personae.data.PreferenceRecord.prompt`)."""
    if isinstance(prompt, str):
        return prompt
    return PreferenceRecord([Turn(t.role, t.content) for t in prompt], "", "").prompt


@dataclass(frozen=True)
class StoredPreference:
    """A stored preference: its id (the client's, else ``sha256:`` of its content), the
    conversation, the two responses."""

    id: str
    context: list[dict[str, str]]
    chosen: str
    rejected: str
    conversation_id: str | None = None


@dataclass(frozen=True)
class PreferenceList:
    preferences: list[StoredPreference]


@dataclass(frozen=True)
class HistoryOut:
    versions: list[PersonaVersion]


@dataclass(frozen=True)
class UserList:
    users: list[str]
    next_after: str | None


@dataclass(frozen=True)
class GenerationPrompt:
    messages: list[dict[str, str]]
    version: int | None
    personalization: str


@dataclass(frozen=True)
class Forgotten:
    user_id: str
    removed: dict[str, int]


@dataclass(frozen=True)
class Health:
    status: str
    detail: dict[str, Any]


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorDetail(BaseModel):
    """What went wrong: the kind of error, a message, the field at fault."""

    type: str = Field(description="the kind of error: " + "; ".join(
        f"{k.kind} ({k.status}): {k.meaning}" for k in ERROR_KINDS.values()))
    message: str
    field: str | None = Field(None, description="the field at fault, as a dotted path (body.preferences.0.chosen)")
    record: int | None = Field(None, description="the preference at fault (1-based) in a request that adds them")
    errors: list[FieldError] | None = None
    retry_after: int | None = Field(None, description="seconds to wait before retrying, when a retry may work")
    failure: str | None = Field(None, description="how the judge's model failed: timeout, rate_limit, server, "
                                                  "transport, lm, parse, content, context_window, invalid_request")
    request_id: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
