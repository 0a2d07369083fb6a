"""Pairwise preference data: records, loaders for many source formats, per-user splits.

``load_preferences`` reads PersonalRewardBench rows (``context`` messages), the PRISM pairs
(``user_profile``), plain ``prompt/chosen/rejected`` triples (the prompt may be an HH-style
``Human: ... Assistant: ...`` transcript) and HH-RLHF transcripts from jsonl, json, csv,
parquet, a ``datasets`` folder, a hub id, or rows in memory.
"""

from __future__ import annotations

from personae.data._demos import PERSONA_DEMO_FIELDS, read_persona_demos
from personae.data._io import SUFFIXES, append_jsonl, read_jsonl_rows, write_rows, write_text_atomic
from personae.data._loaders import load_preferences
from personae.data._records import (
    PreferenceData,
    PreferenceRecord,
    SkippedRecord,
    Turn,
    UserHistory,
    current_fields,
)
from personae.data._rows import as_record, as_records
from personae.data._splits import UserSplit, parse_fractions, select_users, split_by_prompt, split_user

__all__ = [
    "as_record",
    "as_records",
    "current_fields",
    "PERSONA_DEMO_FIELDS",
    "SUFFIXES",
    "PreferenceData",
    "PreferenceRecord",
    "SkippedRecord",
    "Turn",
    "UserHistory",
    "UserSplit",
    "append_jsonl",
    "load_preferences",
    "parse_fractions",
    "read_jsonl_rows",
    "read_persona_demos",
    "select_users",
    "split_by_prompt",
    "split_user",
    "write_rows",
    "write_text_atomic",
]
