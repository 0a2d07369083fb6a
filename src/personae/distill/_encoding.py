"""The reward model's input: (persona, context, response) as one token sequence.

A template is a list of segments, each a field with a short label and a token budget; the
segment without a budget (the response) takes what the others leave of ``max_length``.
Segments are joined with the tokenizer's separator token when it has one (``[SEP]`` for
BERT-like models) and wrapped in its special tokens; an empty persona drops its segment.
The template is saved beside the model (``personae_reward.json``), so scoring encodes
exactly as training did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from personae.errors import ConfigError

__all__ = ["FIELDS", "InputEncoder", "InputTemplate", "Segment", "default_template", "log_length", "special_wrapping"]

FIELDS = ("persona", "context", "response")
_MIN_RESPONSE_TOKENS = 8


@dataclass(frozen=True)
class Segment:
    """One part of the input: ``field`` (persona, context or response), its label, its token budget."""

    field: str
    label: str
    max_tokens: int | None = None


@dataclass(frozen=True)
class InputTemplate:
    """How a (persona, context, response) triple becomes the model's input."""

    segments: tuple[Segment, ...]
    max_length: int

    def __post_init__(self) -> None:
        fields = [s.field for s in self.segments]
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown or len(set(fields)) != len(fields):
            raise ConfigError(f"template segments must be distinct fields among {FIELDS}, got {fields}")
        if "response" not in fields:
            raise ConfigError("a reward-model template needs a response segment")
        open_ended = [s.field for s in self.segments if s.max_tokens is None]
        if open_ended != ["response"]:
            raise ConfigError("only the response segment may leave its budget open (max_tokens None)")
        fixed = sum(s.max_tokens or 0 for s in self.segments)
        if self.max_length - fixed < _MIN_RESPONSE_TOKENS + 2 * len(self.segments):
            raise ConfigError(f"max_length {self.max_length} leaves the response fewer than {_MIN_RESPONSE_TOKENS} "
                              f"tokens after the other segments' {fixed}; raise max_length or lower their budgets")

    @property
    def uses_persona(self) -> bool:
        return any(s.field == "persona" for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        """The template as JSON-ready data (its segments and ``max_length``), as saved with a
        model."""
        return {"segments": [asdict(s) for s in self.segments], "max_length": self.max_length}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputTemplate:
        """The template :meth:`to_dict` wrote; :class:`~personae.errors.ConfigError` when
        ``data`` is not one."""
        try:
            segments = tuple(Segment(str(s["field"]), str(s["label"]),
                                     None if s.get("max_tokens") is None else int(s["max_tokens"]))
                             for s in data["segments"])
            return cls(segments, int(data["max_length"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a reward-model input template: {exc!r}") from None


def default_template(*, max_length: int = 160, persona_tokens: int = 64, context_tokens: int = 32,
                     use_persona: bool = True) -> InputTemplate:
    """Persona, then the request, then the response; without a persona, request and response."""
    segments = [Segment("context", "Request:", context_tokens), Segment("response", "Response:", None)]
    if use_persona:
        segments.insert(0, Segment("persona", "User:", persona_tokens))
    return InputTemplate(tuple(segments), max_length)


def log_length(text: str) -> float:
    """``log(1 + characters)``: the length feature of the length prior (the length heuristic counts characters)."""
    return math.log1p(len(text.strip()))


def special_wrapping(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text (``[CLS]``/``[SEP]``, a BOS...)."""
    probe = "hello world"
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


class InputEncoder:
    """Turns (persona, context, response) into token ids with a tokenizer and a template."""

    def __init__(self, tokenizer: Any, template: InputTemplate) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self._prefix, self._suffix = special_wrapping(tokenizer)
        self._wrap_cost = len(self._prefix) + len(self._suffix)
        sep = getattr(tokenizer, "sep_token_id", None)
        self._sep: list[int] = [] if sep is None else [int(sep)]
        self._cache: dict[tuple[str, int], list[int]] = {}

    def _ids(self, segment: Segment, text: str, cap: int) -> list[int]:
        key = (f"{segment.label} {text}", cap)
        ids = self._cache.get(key)
        if ids is None:
            ids = list(self.tokenizer(key[0], add_special_tokens=False, truncation=True, max_length=cap)["input_ids"])
            if segment.field != "response" and len(self._cache) < 50_000:  # personas and requests repeat
                self._cache[key] = ids
        return ids

    def __call__(self, persona: str, context: str, response: str) -> list[int]:
        values = {"persona": persona.strip(), "context": context.strip(), "response": response.strip()}
        template = self.template
        parts: list[tuple[Segment, list[int]]] = []
        for segment in template.segments:
            text = values[segment.field]
            if not text and segment.field == "persona":
                continue
            parts.append((segment, self._ids(segment, text, segment.max_tokens or template.max_length)))
        used = sum(len(ids) for segment, ids in parts if segment.field != "response")
        budget = template.max_length - self._wrap_cost - len(self._sep) * (len(parts) - 1) - used
        ids: list[int] = []
        for k, (segment, part) in enumerate(parts):
            if k:
                ids.extend(self._sep)
            ids.extend(part[:budget] if segment.field == "response" else part)
        return [*self._prefix, *ids, *self._suffix]

    def encode_many(self, items: Sequence[tuple[str, str, str]]) -> list[list[int]]:
        return [self(*item) for item in items]
