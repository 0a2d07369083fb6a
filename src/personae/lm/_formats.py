"""The output layout a DSPy adapter asked for, read back from the messages it wrote.

An engine sees messages, not the signature. Every DSPy adapter lists the signature's output
fields and their types in its system message (``1. `preferred` (Literal['A', 'B']): ...``)
and then shows the layout it will parse: ``[[ ## name ## ]]`` sections (``ChatAdapter``),
``<name>`` tags (``XMLAdapter``) or a JSON object (``JSONAdapter``, which also sends a
response format when the engine takes one). :func:`requested_layout` reads that back, so

- the scripted LM answers a dict of output fields in the layout the active adapter parses
  (as DSPy's own ``DummyLM`` does), and
- the embedded model is held to that layout by a llama.cpp grammar (:meth:`Layout.grammar`):
  a ``Literal`` field can only be one of its values and a free-text field closes in time, so
  one call is one parsed answer under any of DSPy's adapters.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Layout", "OutputSpec", "requested_layout"]

_FIELDS = re.compile(r"^\d+\. `(\w+)` \((.*?)\):", re.MULTILINE)
_LITERAL = re.compile(r"^Literal\[(.*)\]$", re.DOTALL)


@dataclass(frozen=True)
class OutputSpec:
    """One output field as the adapter described it: its ``name`` and its type as text."""

    name: str
    annotation: str

    def scalar(self) -> bool:
        """Whether a grammar can hold the field: text, a ``Literal``, ``bool``, ``int`` or ``float``."""
        return self.annotation in ("str", "bool", "int", "float") or self.choices() is not None

    def choices(self) -> tuple[str, ...] | None:
        """The values a ``Literal`` or ``bool`` field may take, as the adapter parses them; else None."""
        if self.annotation == "bool":
            return ("True", "False")
        match = _LITERAL.match(self.annotation)
        if match is None:
            return None
        try:
            values = ast.literal_eval(f"({match.group(1)},)")
        except (ValueError, SyntaxError):
            return None
        return tuple(str(v) for v in values)


@dataclass(frozen=True)
class Layout:
    """What an adapter will parse: ``kind`` (``chat``, ``xml`` or ``json``) and the output
    fields in the order it asked for them."""

    kind: Literal["chat", "xml", "json"]
    fields: tuple[OutputSpec, ...]

    def render(self, values: Mapping[str, Any]) -> str:
        """``values`` (output field -> value) written as this layout's adapter expects them.

        Fields the adapter asked for come in its order; a ``json`` layout keeps every key given.
        """
        if self.kind == "json":
            return json.dumps(dict(values), ensure_ascii=False)
        import dspy
        from dspy.adapters.chat_adapter import FieldInfoWithName

        asked = [f.name for f in self.fields if f.name in values] or list(values)
        adapter = dspy.ChatAdapter() if self.kind == "chat" else dspy.XMLAdapter()
        text = str(adapter.format_field_with_value(
            {FieldInfoWithName(name=name, info=dspy.OutputField()): values[name] for name in asked}))
        return text + "\n\n[[ ## completed ## ]]" if self.kind == "chat" else text

    def grammar(self, max_chars: int, max_tokens: int | None = None) -> str | None:
        """A llama.cpp grammar (GBNF) of this layout, free text capped at ``max_chars`` characters;
        None for ``json`` (a response schema does that job).

        With ``max_tokens``, the caps shrink so that the longest answer the grammar allows has
        at most that many characters: a token is at least one character, so the answer always
        closes before the completion limit cuts it (a cut answer would not parse).
        """
        if self.kind == "json" or not self.fields or not all(f.scalar() for f in self.fields):
            return None  # a list, an object or a model: the adapter's own parsing, no grammar
        parts: list[str] = []
        fixed, free = 0, 0  # characters of markers and answers, and free-text fields
        for spec in self.fields:
            choices = spec.choices()
            if choices:
                value = "(" + " | ".join(_quote(c) for c in choices) + ")"
                fixed += max(map(len, choices))
            elif spec.annotation == "int":
                value, fixed = '"-"? [0-9]{1,18}', fixed + 19
            elif spec.annotation == "float":
                value, fixed = '"-"? [0-9]{1,18} ("." [0-9]{1,12})?', fixed + 32
            else:
                value, free = "text", free + 1
            if self.kind == "chat":
                opening, closing = f"[[ ## {spec.name} ## ]]\n", "\n\n"
            else:
                opening, closing = f"<{spec.name}>\n", f"\n</{spec.name}>\n\n"
            parts.append(f"{_quote(opening)} {value} {_quote(closing)}")
            fixed += len(opening) + len(closing)
        if self.kind == "chat":
            parts.append(_quote("[[ ## completed ## ]]"))
            fixed += len("[[ ## completed ## ]]")
        cap = max_chars
        if max_tokens is not None and free:
            cap = min(cap, (max_tokens - fixed) // free)
        if cap < 1:
            return None  # no room for the text: leave the answer to the model
        excluded = "[" if self.kind == "chat" else "<"
        return f"root ::= {' '.join(parts)}\ntext ::= [^{excluded}]{{1,{cap}}}\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def requested_layout(system: str, *, json_schema: bool = False) -> Layout | None:
    """The layout the adapter that wrote ``system`` (its system message) will parse, or None
    when the messages do not come from a DSPy adapter. ``json_schema``: the request carries a
    response format, so the answer is JSON whatever the text says."""
    head, sep, rest = system.partition("Your output fields are:")
    if not sep:
        return None
    listing, _, layout = rest.partition("All interactions will be structured")
    fields = tuple(OutputSpec(name, annotation) for name, annotation in _FIELDS.findall(listing))
    if json_schema or "Outputs will be a JSON object" in layout:
        return Layout("json", fields)
    if not fields:
        return None
    first = fields[0].name
    if f"[[ ## {first} ## ]]" in layout:
        return Layout("chat", fields)
    if f"<{first}>" in layout:
        return Layout("xml", fields)
    return None
