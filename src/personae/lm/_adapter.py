"""The adapter personae uses by default: DSPy's JSON adapter, with optional length caps.

A small model asked for free text in a JSON schema can ramble until the completion cap cuts
it off, and the half-written object then fails to parse. The embedded engine caps every
free-text field inside its grammar; for a remote server that honours JSON schemas (llama.cpp,
vLLM), :func:`personae.lm.get_lm` takes ``max_string_chars`` and this adapter writes it into
the schema as each string field's ``maxLength``, so the server closes the field in time.

The system message and the response schema depend on the signature alone, yet DSPy builds
both afresh for every call (a pydantic model class and its JSON schema each time): this
adapter builds them once per signature (its instructions and fields: modules built per record
derive equal signatures as new classes) and reuses them, which takes more than a third of the
client's CPU off every call to a fast server.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import dspy
import pydantic

__all__ = ["JSONAdapter", "cap_strings"]

MAX_STRING_CHARS_ATTR = "personae_max_string_chars"


def cap_strings(schema: Any, max_chars: int) -> Any:
    """A copy of a JSON schema where every free-text string property has a ``maxLength``."""
    if isinstance(schema, dict):
        out = {k: cap_strings(v, max_chars) for k, v in schema.items()}
        if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
            out["maxLength"] = max_chars
        return out
    if isinstance(schema, list):
        return [cap_strings(v, max_chars) for v in schema]
    return schema


_CACHED_SIGNATURES = 512


def _signature_key(signature: Any) -> tuple[Hashable, ...]:
    """What a signature's system message and response schema are made of, as a hashable key."""
    parts: list[Hashable] = [signature.instructions]
    for name, info in signature.fields.items():
        annotation = info.annotation
        try:
            hash(annotation)
        except TypeError:
            annotation = repr(annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        parts.append((name, annotation, repr(info.default), tuple(sorted((k, repr(v)) for k, v in extra.items()))))
    return tuple(parts)


class JSONAdapter(dspy.JSONAdapter):
    """``dspy.JSONAdapter`` that honours an LM's string-length cap in the response schema.

    The cap comes from ``max_string_chars`` here or, when that is ``None``, from the LM (set by
    ``get_lm(..., max_string_chars=N)``). Without either it behaves exactly like DSPy's.
    """

    def __init__(self, *args: Any, max_string_chars: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_string_chars = max_string_chars
        # The most recently used signatures' parts, shared by this adapter's copies.
        self._parts: OrderedDict[tuple[Hashable, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: tuple[Hashable, ...], build: Any) -> Any:
        with self._lock:
            if key in self._parts:
                self._parts.move_to_end(key)
                return self._parts[key]
        value = build()
        with self._lock:
            self._parts[key] = value
            while len(self._parts) > _CACHED_SIGNATURES:
                self._parts.popitem(last=False)
        return value

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_parts"] = OrderedDict()  # another process builds its own
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> JSONAdapter:
        clone = copy.copy(self)  # the caches are shared: what they hold never changes
        memo[id(self)] = clone
        return clone

    def format_system_message(self, signature: Any) -> str:
        return str(self._cached(("system", _signature_key(signature)),
                                lambda: super(JSONAdapter, self).format_system_message(signature)))

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
        cap = self.max_string_chars or getattr(lm, MAX_STRING_CHARS_ATTR, None)
        if "response_format" not in lm.supported_params:
            return

        def build() -> Any:
            probe: dict[str, Any] = {}
            super(JSONAdapter, self)._prepare_response_format(lm, probe, signature)
            fmt = probe.get("response_format")
            if isinstance(fmt, type) and issubclass(fmt, pydantic.BaseModel):
                # DSPy builds a fresh model class per call and asks it for its schema each
                # time; this class answers with the schema built once (capped when asked).
                schema = fmt.model_json_schema()
                if cap:
                    schema = cap_strings(copy.deepcopy(schema), int(cap))
                fmt.model_json_schema = lambda *a, **k: copy.deepcopy(schema)  # type: ignore[method-assign]
            return fmt

        fmt = self._cached(("format", bool(lm.supports_response_schema), cap, _signature_key(signature)), build)
        if fmt is not None:
            lm_kwargs["response_format"] = fmt


# dspy.Adapter wraps ``parse`` of every subclass (for its callbacks) in a wrapper of this class's own;
# it is DSPy's parse unchanged, so only the wrapper's docstring is given here.
JSONAdapter.parse.__doc__ = """DSPy's JSON parsing, unchanged: the signature's output fields from the LM's
``completion`` (a JSON object, repaired when malformed), each cast to its field's type; raises
``dspy.utils.exceptions.AdapterParseError`` when no object or not every output field comes back."""
