"""A domain's own few-shot examples for persona inference, read from a file."""

from __future__ import annotations

import os
from pathlib import Path

from personae.data._io import parse_line
from personae.data._records import current_fields
from personae.data._rows import record_from_row
from personae.errors import DataError

__all__ = ["PERSONA_DEMO_FIELDS", "read_persona_demos"]

PERSONA_DEMO_FIELDS = ("prompt", "chosen", "rejected", "persona")
"""The fields of one persona-inference demo (those of :class:`personae.signatures.InferPersona`)."""

def read_persona_demos(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """A domain's own few-shot examples for persona inference, read from a jsonl file.

    Each line is a preference row (``prompt`` or ``context``, ``chosen``, ``rejected``, read as
    a record is: an HH-style prompt transcript becomes its turns) with the persona of who would
    prefer the chosen response in ``persona``, ``chosen_persona`` or ``chosen_persona_gold``.
    Files in the field names of earlier versions (``context``, ``preferred_response``,
    ``other_response``, ``persona``) are read too. Returns dicts of :data:`PERSONA_DEMO_FIELDS`.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError("no such file" if not path.exists() else "not a file", source=source)
    demos: list[dict[str, str]] = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not valid UTF-8: {exc}", source=source, record=number) from None
            if not line.strip():
                continue
            row = parse_line(line, source, number)
            if isinstance(row, DataError):
                raise row
            if "preferred_response" in row or "other_response" in row:
                for key in ("context", "preferred_response", "other_response", "persona"):
                    if not isinstance(row.get(key), str) or not row[key].strip():
                        raise DataError("missing or not text", source=source, record=number, field=key)
                demos.append(current_fields({key: row[key] for key in ("context", "preferred_response",
                                                                       "other_response", "persona")}))
                continue
            persona_key = next((k for k in ("persona", "chosen_persona", "chosen_persona_gold") if k in row), None)
            if persona_key is None:
                raise DataError("expected prompt/chosen/rejected and the chosen side's persona in persona (or "
                                "chosen_persona)", source=source, record=number, field="persona")
            persona = row[persona_key]
            if not isinstance(persona, str) or not persona.strip():
                raise DataError("missing or not text", source=source, record=number, field=persona_key)
            record = record_from_row(row, source=source, name=path.name, number=number)
            demos.append({"prompt": record.prompt, "chosen": record.chosen, "rejected": record.rejected,
                          "persona": persona.strip()})
    if not demos:
        raise DataError("no demos in the file", source=source)
    return demos
