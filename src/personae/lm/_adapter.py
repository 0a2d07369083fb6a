"""The adapter personae uses by default: DSPy's JSON adapter, with optional length caps.

A small model asked for free text in a JSON schema can ramble until the completion cap cuts
it off, and the half-written object then fails to parse. The embedded engine caps every
free-text field inside its grammar; for a remote server that honours JSON schemas (llama.cpp,
vLLM), :func:`personae.lm.get_lm` takes ``max_string_chars`` and this adapter writes it into
the schema as each string field's ``maxLength``, so the server closes the field in time.
"""

from __future__ import annotations

import copy
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


class JSONAdapter(dspy.JSONAdapter):
    """``dspy.JSONAdapter`` that honours an LM's string-length cap in the response schema.

    The cap comes from ``max_string_chars`` here or, when that is ``None``, from the LM (set by
    ``get_lm(..., max_string_chars=N)``). Without either it behaves exactly like DSPy's.
    """

    def __init__(self, *args: Any, max_string_chars: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_string_chars = max_string_chars

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
        super()._prepare_response_format(lm, lm_kwargs, signature)
        cap = self.max_string_chars or getattr(lm, MAX_STRING_CHARS_ATTR, None)
        fmt = lm_kwargs.get("response_format")
        if not cap or not (isinstance(fmt, type) and issubclass(fmt, pydantic.BaseModel)):
            return
        # DSPy builds a fresh model class per call and fixes its schema the same way.
        schema = cap_strings(copy.deepcopy(fmt.model_json_schema()), int(cap))
        fmt.model_json_schema = lambda *a, **k: schema  # type: ignore[method-assign]
