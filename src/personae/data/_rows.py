"""Row recognition: one source row, in any supported format, read as a :class:`PreferenceRecord`."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from personae.data._io import json_value
from personae.data._records import PreferenceRecord, Turn
from personae.errors import DataError

__all__ = ["FIELD_COLUMNS", "as_record", "as_records", "normalise_split", "record_from_row"]

logger = logging.getLogger(__name__)

FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "record_id": ("record_id", "id", "pair_id"),
    "user_id": ("user_id",),
    "profile": ("profile", "user_profile"),
    "split": ("split",),
    "context": ("context",),
    "prompt": ("prompt",),
    "chosen": ("chosen",),
    "rejected": ("rejected",),
    "metadata": ("metadata",),
}
"""The source columns each record field is read from when ``columns`` does not say."""

_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "system": "system"}
_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}
_ASSISTANT = "\n\nAssistant:"
_LABEL = "Assistant:"
_TURN_MARK = re.compile(r"\n\n(Human|Assistant):")


def normalise_split(value: Any) -> str | None:
    """``"validation"``/``"dev"`` -> ``"val"``; other names kept (stripped); blank -> None."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    return _SPLITS.get(text.lower(), text)


def record_from_row(row: Any, *, source: str, name: str, number: int,
                    columns: Mapping[str, str] | None = None, split: str | None = None) -> PreferenceRecord:
    """Read one source row (any recognised format) as a record; raise DataError if malformed.

    ``number`` is the 1-based line/row used in errors and in the default ``record_id``
    (``"<name>:<number>"``); ``split`` is the split to use when the row names none. A
    ``prompt`` that is an HH-style transcript (``Human: ...\\n\\nAssistant: ...``) becomes
    its turns, and the responses lose a leading ``Assistant:`` label; ``raw`` keeps the row.
    """

    def fail(message: str, column: str | None = None) -> DataError:
        return DataError(message, source=source, record=number, field=column)

    if not isinstance(row, Mapping):
        raise fail(f"expected an object with named columns, got {_kind(row)}")
    picked, rest = _pick_columns(row, columns, fail)
    for key in ("chosen", "rejected"):
        if key not in picked:
            raise fail(f"missing; the row has columns {', '.join(map(str, row)) or 'none'}", key)
    (chosen_col, chosen), (rejected_col, rejected) = picked["chosen"], picked["rejected"]
    context_item = picked.get("context")
    prompt_item = picked.get("prompt")
    labelled = False  # an HH-style prompt transcript: the responses may start with "Assistant:"
    if context_item is not None and context_item[1] not in (None, ""):  # "" from a csv with both columns
        context_col = context_item[0]
        context = _context(context_item[1], lambda m: fail(m, context_item[0]))
        if prompt_item is not None:
            rest[prompt_item[0]] = prompt_item[1]
    elif prompt_item is not None:
        context_col = prompt_item[0]
        prompt = _text(prompt_item[1], lambda m: fail(m, prompt_item[0]))
        labelled = prompt.lstrip().startswith("Human:")
        turns = _prompt_turns(prompt) if labelled else []
        if labelled and not turns:
            logger.debug("%s, record %d: the prompt transcript does not end with a human turn; "
                         "kept as one user turn", source, number)
        context = turns or [Turn("user", prompt)]
        if context_item is not None:
            rest[context_item[0]] = context_item[1]
    elif _is_transcript(chosen):
        context_col = chosen_col
        context, chosen, rejected = _split_transcript(chosen, rejected, lambda m: fail(m, rejected_col))
    elif context_item is not None:
        raise fail(f"expected a list of {{role, content}} messages, got {_kind(context_item[1])}", context_item[0])
    else:
        raise fail("missing: no 'prompt' or 'context' column, and 'chosen' is not a "
                   "'\\n\\nHuman: ...\\n\\nAssistant: ...' transcript", "prompt")
    if context[-1].role != "user":
        raise fail(f"the last turn must be the user's, got {context[-1].role!r}", context_col)
    if not context[-1].content.strip():
        raise fail(f"the last (user) turn is {_kind(context[-1].content)}", context_col)
    chosen = _response(chosen, lambda m: fail(m, chosen_col))
    rejected = _response(rejected, lambda m: fail(m, rejected_col))
    if labelled:
        chosen, rejected = _unlabel(chosen), _unlabel(rejected)

    def value(key: str) -> Any:
        item = picked.get(key)
        if item is None or item[1] is None or item[1] == "" or (isinstance(item[1], float) and math.isnan(item[1])):
            return None  # NaN: a missing cell of a pandas frame
        return item[1]

    user_id, profile, record_id = value("user_id"), value("profile"), value("record_id")
    for key, allowed, wanted in (("user_id", (str, int, float), "a string or a number"),
                                 ("record_id", (str, int, float), "a string or a number"),
                                 ("split", (str,), "a split name (a string)"),
                                 ("profile", (str, Mapping, list, tuple), "a text or an object")):
        found = value(key)
        if found is not None and (isinstance(found, bool) or not isinstance(found, allowed)):
            raise fail(f"expected {wanted}, got {_kind(found)}", picked[key][0])
    metadata = dict(rest)
    extra = value("metadata")
    if isinstance(extra, str) and extra.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            extra = json_value(extra)
    if isinstance(extra, Mapping):
        for key, item in extra.items():
            metadata.setdefault(str(key), item)
    elif extra is not None:
        metadata[picked["metadata"][0]] = extra
    if profile is not None and not isinstance(profile, str):
        profile = json.dumps(profile, ensure_ascii=False, sort_keys=True, default=str)
    named = normalise_split(value("split"))
    if named is not None and named not in _SPLITS.values():
        raise fail(f"unknown split {named!r}: expected train, val or test (validation, valid and dev read as val)",
                   picked["split"][0])
    return PreferenceRecord(
        context, chosen, rejected, user_id=None if user_id is None else str(user_id), profile=profile,
        split=named or normalise_split(split),
        record_id=f"{name}:{number}" if record_id is None else str(record_id),
        metadata=metadata, raw=dict(row))


def _pick_columns(row: Mapping[str, Any], columns: Mapping[str, str] | None,
                  fail: Callable[..., DataError]) -> tuple[dict[str, tuple[str, Any]], dict[str, Any]]:
    """Which source column feeds each field: ``columns`` first, then the default names."""
    columns = columns or {}
    picked: dict[str, tuple[str, Any]] = {}
    for key, column in columns.items():
        if column not in row:
            raise fail(f"missing (mapped to '{key}'); the row has columns {', '.join(map(str, row))}", column)
        picked[key] = (column, row[column])
    taken = set(columns.values())
    for key, defaults in FIELD_COLUMNS.items():
        # An explicit prompt mapping wins over a default context column, and vice versa.
        if key in picked or (key in ("prompt", "context") and ({"prompt", "context"} & set(columns))):
            continue
        for column in defaults:
            if column in row and column not in taken:
                picked[key] = (column, row[column])
                taken.add(column)
                break
    rest = {str(k): v for k, v in row.items() if k not in taken}
    return picked, rest


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value else "a blank string" if not value.strip() else "a string"
    return f"{'an' if type(value).__name__[0] in 'aeiou' else 'a'} {type(value).__name__}"


def _text(value: Any, fail: Callable[[str], DataError]) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise fail(f"expected a non-empty string, got {_kind(value)}")


def _context(value: Any, fail: Callable[[str], DataError]) -> list[Turn]:
    """A list of {role, content} messages (or its JSON text); a plain string is one user turn."""
    if isinstance(value, str):
        if not value.lstrip().startswith("["):
            return [Turn("user", _text(value, fail))]
        try:
            value = json_value(value)
        except ValueError as exc:
            raise fail(f"not valid JSON: {exc}") from None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise fail(f"expected a list of {{role, content}} messages, got {_kind(value)}")
    if not value:
        raise fail("expected at least one turn, got an empty list")
    turns = []
    for number, message in enumerate(value, 1):
        if isinstance(message, Turn):
            message = {"role": message.role, "content": message.content}
        if not isinstance(message, Mapping):
            raise fail(f"turn {number}: expected a {{role, content}} object, got {_kind(message)}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role.strip().lower() not in _ROLES:
            raise fail(f"turn {number}: expected role 'user', 'assistant' or 'system', got {role!r}")
        if not isinstance(content, str):
            raise fail(f"turn {number}: expected string content, got {_kind(content)}")
        turns.append(Turn(_ROLES[role.strip().lower()], content))
    return turns


def _response(value: Any, fail: Callable[[str], DataError]) -> str:
    """A response: a string, an assistant {role, content} message, or a list of messages."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):  # a message as JSON text (from csv)
        with contextlib.suppress(ValueError):
            parsed = json_value(value)
            value = parsed if _is_messages(parsed) else value
    if isinstance(value, Mapping):
        if "content" not in value:
            raise fail("expected a {role, content} message, got an object without 'content'")
        return _text(value["content"], fail)
    if isinstance(value, (list, tuple)):
        if not _is_messages(value):
            raise fail("expected a list of {role, content} messages")
        tail: list[str] = []
        for message in reversed(value):  # the assistant messages after the last other one
            if str(message.get("role", "")).strip().lower() != "assistant":
                break
            tail.append(_text(message.get("content"), fail))
        if not tail:
            raise fail("expected the list of messages to end with an assistant message")
        return "\n\n".join(reversed(tail))
    return _text(value, fail)


def _is_messages(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "role" in value and "content" in value
    return isinstance(value, (list, tuple)) and bool(value) and all(_is_messages(m) for m in value)


def _is_transcript(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith("Human:") and _ASSISTANT in value


def _split_transcript(chosen: str, rejected: Any,
                      fail: Callable[[str], DataError]) -> tuple[list[Turn], str, str]:
    """HH-RLHF: the prompt is what precedes the last ``Assistant:`` of the chosen transcript."""
    if not isinstance(rejected, str):
        raise fail(f"expected a transcript string like 'chosen', got {_kind(rejected)}")
    chosen = "\n\n" + chosen.lstrip()
    rejected = "\n\n" + rejected.lstrip()
    cut = chosen.rfind(_ASSISTANT)
    if not rejected.startswith(chosen[: cut + len(_ASSISTANT)]):
        # The two part earlier: cut at the last Assistant mark inside their common beginning.
        common = next((i for i, (x, y) in enumerate(zip(chosen, rejected, strict=False)) if x != y),
                      min(len(chosen), len(rejected)))
        cut = chosen.rfind(_ASSISTANT, 0, common)
        if cut < 0:
            raise fail("does not share a '\\n\\nHuman: ...\\n\\nAssistant:' prompt with 'chosen'")
    start = cut + len(_ASSISTANT)
    parts = _TURN_MARK.split(chosen[:cut])
    turns = [Turn("user" if who == "Human" else "assistant", text.strip())
             for who, text in zip(parts[1::2], parts[2::2], strict=True)]
    return turns, chosen[start:].strip(), rejected[start:].strip()


def _prompt_turns(prompt: str) -> list[Turn]:
    """An HH-style prompt (``Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...``) as turns.

    An empty last ``Assistant:`` turn (the one the responses complete) is dropped. A transcript
    that then does not end with a non-empty human turn gives no turns: the caller keeps the
    prompt as one user turn, as for ordinary text.
    """
    parts = _TURN_MARK.split("\n\n" + prompt.lstrip())
    turns = [Turn("user" if who == "Human" else "assistant", text.strip())
             for who, text in zip(parts[1::2], parts[2::2], strict=True)]
    if turns and turns[-1].role == "assistant" and not turns[-1].content:
        turns.pop()
    if not turns or turns[-1].role != "user" or not turns[-1].content:
        return []
    return turns


def _unlabel(response: str) -> str:
    """A response to an HH-style prompt without its leading ``Assistant:`` label and outer whitespace.

    A bare label (an empty reply in the source) is kept, so the record still loads as before.
    """
    text = response.strip()
    if text.startswith(_LABEL):
        text = text[len(_LABEL):].strip()
    return text or response.strip()


def as_record(item: Any, *, source: str = "examples", index: int = 1) -> PreferenceRecord:
    """``item`` as a :class:`PreferenceRecord`: a record itself, or a ``dspy.Example`` or dict read
    as a row of a file is (:func:`record_from_row`: ``prompt`` text or ``context`` turns, ``chosen``,
    ``rejected``, and ``record_id``, ``user_id``, ``split``... when given; the id defaults to
    ``"<source>:<index>"``). A missing or empty side is a :class:`~personae.errors.DataError` naming
    ``source``, the item (1-based ``index``) and the field."""
    if isinstance(item, PreferenceRecord):
        return item
    values = item.toDict() if hasattr(item, "toDict") else item
    if not isinstance(values, Mapping):
        raise DataError(f"expected a PreferenceRecord, dspy.Example or dict, got {_kind(item)}", source=source,
                        record=index)
    values = dict(values)
    if isinstance(values.get("prompt"), (list, tuple)) and "context" not in values:
        values["context"] = values.pop("prompt")  # a conversation given as the prompt
    return record_from_row(values, source=source, name=source, number=index)


def as_records(items: Iterable[Any], *, source: str = "examples") -> list[PreferenceRecord]:
    """Each of ``items`` as a :class:`PreferenceRecord` (see :func:`as_record`)."""
    if isinstance(items, (str, bytes, Mapping)) or hasattr(items, "toDict"):
        raise DataError("expected a list of pairs (records or dspy.Examples), not a single value", source=source)
    return [as_record(item, source=source, index=i) for i, item in enumerate(items, 1)]
