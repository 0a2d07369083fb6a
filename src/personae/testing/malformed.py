"""A corpus of broken preference files, written by code, for tests of the loaders' error contract.

It covers every format the loaders read (.jsonl, .jsonl.gz, .json, .csv, .parquet, ``datasets``
folders) and every field they read. Each :class:`Case` builds one broken file or folder and
says what the error must name: the record and field at fault, where one record is, and, for a
file that also holds good records, every bad record ``--skip-invalid`` lists and how many good
ones it keeps. :data:`CASES` is the corpus; :func:`where` is the text an error names a place by.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BY_ID", "CASES", "GOOD", "Case", "columns_of", "good", "jsonl_bytes", "source_of", "where"]

# --- building the corpus --------------------------------------------------------------------

Build = Callable[[Path], object]  # writes one broken file or folder at the path it is given

GOOD: dict[str, Any] = {"prompt": "Which tea?", "chosen": "Green tea.", "rejected": "Coffee."}
HH_GOOD: dict[str, Any] = {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!",
                           "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."}
PRB_GOOD: dict[str, Any] = {
    "user_id": "u1", "conversation_id": "c1", "split": "train",
    "context": [{"role": "user", "content": "Plan a trip?"}, {"role": "assistant", "content": "Where to?"},
                {"role": "user", "content": "Lisbon."}],
    "chosen": {"role": "assistant", "content": "Day 1: Alfama."},
    "rejected": {"role": "assistant", "content": "It is in Portugal."},
}


def good(**changes: Any) -> dict[str, Any]:
    """The plain good row with some fields changed (a value of ``...`` drops the field)."""
    row = {**GOOD, **changes}
    return {k: v for k, v in row.items() if v is not ...}


def prb(**changes: Any) -> dict[str, Any]:
    row = {**PRB_GOOD, **changes}
    return {k: v for k, v in row.items() if v is not ...}


def jsonl_bytes(rows: list[Any]) -> bytes:
    """One line per row: bytes as they are, str as text, anything else as JSON."""
    out = b""
    for row in rows:
        line = row if isinstance(row, bytes) else row.encode() if isinstance(row, str) else json.dumps(row).encode()
        out += line + b"\n"
    return out


def jsonl(*rows: Any) -> Build:
    return lambda path: path.write_bytes(jsonl_bytes(list(rows)))


def raw(data: bytes) -> Build:
    return lambda path: path.write_bytes(data)


def gz(*rows: Any) -> Build:
    return lambda path: path.write_bytes(gzip.compress(jsonl_bytes(list(rows)), mtime=0))


def gz_truncated(path: Path) -> None:
    whole = gzip.compress(jsonl_bytes([GOOD] * 200), mtime=0)
    path.write_bytes(whole[: len(whole) // 2])


def gz_corrupt(path: Path) -> None:
    whole = bytearray(gzip.compress(jsonl_bytes([good(prompt=f"q{i}") for i in range(500)]), mtime=0))
    whole[40:60] = bytes(20)  # deflate data damaged in the middle
    path.write_bytes(bytes(whole))


def json_doc(value: Any) -> Build:
    return lambda path: path.write_text(json.dumps(value), encoding="utf-8")


def parquet(columns: dict[str, Any]) -> Build:
    """A parquet file of these columns (pyarrow arrays, or lists pyarrow types itself)."""

    def build(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()}),
                       path)

    return build


def parquet_timestamps(path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(timestamp_table(), path)


def parquet_truncated(path: Path) -> None:
    parquet({"prompt": ["a"] * 50, "chosen": ["x"] * 50, "rejected": ["y"] * 50})(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def dataset(rows: list[dict[str, Any]] | None = None, *, table: Callable[[], Any] | None = None,
            damage: Build | None = None) -> Build:
    """A folder written by ``datasets.Dataset.save_to_disk`` (from rows or an arrow table), then damaged."""

    def build(path: Path) -> None:
        import datasets

        data = datasets.Dataset(table()) if table is not None else datasets.Dataset.from_list(rows or [])
        data.save_to_disk(str(path))
        if damage is not None:
            damage(path)

    return build


def dataset_dict(parts: dict[str, list[dict[str, Any]]],
                 damage: Build | None = None) -> Build:
    def build(path: Path) -> None:
        import datasets

        datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(str(path))
        if damage is not None:
            damage(path)

    return build


def timestamp_table() -> Any:
    """Three rows; the second has a timestamp in the year 31,690,708, which no Python datetime holds."""
    import pyarrow as pa

    return pa.table({"prompt": ["a", "b", "c"], "chosen": ["x", "y", "z"], "rejected": ["n", "n", "n"],
                     "when": pa.array([0, 10**15, 0], pa.timestamp("s"))})


def empty_table() -> Any:
    import pyarrow as pa

    return pa.table({name: pa.array([], pa.string()) for name in ("prompt", "chosen", "rejected")})


def write_file(name: str, text: str) -> Build:
    return lambda folder: (folder / name).write_text(text, encoding="utf-8")


def truncate_arrow(folder: Path) -> None:
    for arrow in folder.glob("*.arrow"):
        arrow.write_bytes(arrow.read_bytes()[:100])


def remove_arrow(folder: Path) -> None:
    for arrow in folder.glob("*.arrow"):
        arrow.unlink()


def make_folder(path: Path) -> None:
    path.mkdir()


# --- the corpus -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One broken input: how to build it, and what the error must name.

    ``record``/``field``: the first record and field at fault (None when the whole source is).
    ``skips``: for a source that also holds good records, every bad record as (record, field),
    and ``good`` the number of records ``--skip-invalid`` keeps. ``part`` is the split of a
    DatasetDict the bad record is in (the source is then named ``path[part]``).
    """

    id: str
    name: str
    build: Build
    record: int | None = None
    field: str | None = None
    skips: tuple[tuple[int, str | None], ...] = ()
    good: int = 0
    args: tuple[str, ...] = ()
    part: str = ""

    @property
    def format(self) -> str:
        """The format the case's file is in, by its name (``datasets`` for a folder)."""
        for suffix in (".jsonl.gz", ".jsonl", ".json", ".csv", ".parquet"):
            if self.name.endswith(suffix):
                return suffix
        return "datasets"


TRANSCRIPT_BAD = "\n\nHuman: Bye\n\nAssistant: No."
DEEP = "[" * 100_000
HUGE_INT = "1" * 5_000

CASES = [
    # .jsonl: lines that are not JSON objects
    Case("jsonl-invalid-json-mid-file", "bad_json.jsonl", jsonl(GOOD, '{"prompt": "q", "chosen": ', GOOD),
         2, None, skips=((2, None),), good=2),
    Case("jsonl-line-not-an-object", "not_object.jsonl", jsonl(GOOD, "[1, 2]", GOOD, '"text"', "null"),
         2, None, skips=((2, None), (4, None), (5, None)), good=2),
    Case("jsonl-non-utf8-bytes", "latin1.jsonl",
         jsonl(GOOD, b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}', GOOD), 2, None,
         skips=((2, None),), good=2),
    Case("jsonl-nested-too-deep", "deep.jsonl", jsonl(GOOD, DEEP, GOOD), 2, None, skips=((2, None),), good=2),
    Case("jsonl-integer-too-long", "huge_int.jsonl", jsonl(GOOD, '{"prompt": "q", "chosen": "a", "rejected": '
                                                              '"b", "score": ' + HUGE_INT + "}"),
         2, None, skips=((2, None),), good=1),
    Case("jsonl-empty-file", "empty.jsonl", raw(b"")),
    Case("jsonl-blank-lines-only", "blank.jsonl", raw(b"\n   \n\t\n")),
    Case("jsonl-path-is-a-folder", "folder.jsonl", make_folder),
    # .jsonl: plain prompt/chosen/rejected triples, field by field
    Case("jsonl-chosen-missing", "no_chosen.jsonl", jsonl(GOOD, good(chosen=...), GOOD, good(rejected=None)),
         2, "chosen", skips=((2, "chosen"), (4, "rejected")), good=2),
    Case("jsonl-rejected-blank", "blank_rejected.jsonl", jsonl(good(rejected="   "), GOOD), 1, "rejected",
         skips=((1, "rejected"),), good=1),
    Case("jsonl-prompt-empty-string", "empty_prompt.jsonl", jsonl(GOOD, good(prompt="")), 2, "prompt",
         skips=((2, "prompt"),), good=1),
    Case("jsonl-prompt-wrong-type", "prompt_list.jsonl", jsonl(GOOD, GOOD, good(prompt=["q"])), 3, "prompt",
         skips=((3, "prompt"),), good=2),
    Case("jsonl-no-prompt-or-context", "no_prompt.jsonl", jsonl(good(prompt=...)), 1, "prompt"),
    Case("jsonl-chosen-wrong-type", "chosen_number.jsonl", jsonl(GOOD, good(chosen=3.5)), 2, "chosen",
         skips=((2, "chosen"),), good=1),
    Case("jsonl-user-id-list", "user_id_list.jsonl", jsonl(good(user_id="u1"), good(user_id=["u1", "u2"])),
         2, "user_id", skips=((2, "user_id"),), good=1),
    Case("jsonl-user-id-bool", "user_id_bool.jsonl", jsonl(good(user_id=True), good(user_id=7)), 1, "user_id",
         skips=((1, "user_id"),), good=1),
    Case("jsonl-profile-number", "profile_number.jsonl", jsonl(good(profile="Likes tea."), good(profile=42)),
         2, "profile", skips=((2, "profile"),), good=1),
    Case("jsonl-user-profile-bool", "user_profile_bool.jsonl", jsonl(good(user_profile=False), GOOD),
         1, "user_profile", skips=((1, "user_profile"),), good=1),
    Case("jsonl-record-id-object", "id_object.jsonl", jsonl(good(id="p1"), good(id={"n": 2})), 2, "id",
         skips=((2, "id"),), good=1),
    Case("jsonl-split-list", "split_list.jsonl", jsonl(good(split=["train"]), good(split="test")), 1, "split",
         skips=((1, "split"),), good=1),
    Case("jsonl-split-unknown", "split_unknown.jsonl", jsonl(good(split="train"), good(split="holdout")), 2,
         "split", skips=((2, "split"),), good=1),
    Case("jsonl-columns-map-to-missing-column", "mapped.jsonl",
         jsonl({"question": "q", "good": "a", "bad": "b"}, {"question": "q2", "good": "a", "bad": "b"}),
         1, "answer", args=("--columns", "prompt=question,chosen=answer,rejected=bad")),
    # .jsonl: PersonalRewardBench context message lists
    Case("prb-context-bad-role", "prb_role.jsonl",
         jsonl(PRB_GOOD, prb(context=[{"role": "robot", "content": "beep"}])), 2, "context",
         skips=((2, "context"),), good=1),
    Case("prb-context-content-not-text", "prb_content.jsonl",
         jsonl(prb(context=[{"role": "user", "content": 5}]), PRB_GOOD), 1, "context",
         skips=((1, "context"),), good=1),
    Case("prb-context-turn-missing-role", "prb_no_role.jsonl",
         jsonl(PRB_GOOD, prb(context=[{"content": "hi"}]), PRB_GOOD), 2, "context", skips=((2, "context"),), good=2),
    Case("prb-context-turn-not-an-object", "prb_turn_string.jsonl",
         jsonl(PRB_GOOD, prb(context=["hello", {"role": "user", "content": "hi"}])), 2, "context",
         skips=((2, "context"),), good=1),
    Case("prb-context-ends-with-assistant", "prb_last_assistant.jsonl",
         jsonl(PRB_GOOD, prb(context=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])),
         2, "context", skips=((2, "context"),), good=1),
    Case("prb-context-empty-list", "prb_empty_context.jsonl", jsonl(PRB_GOOD, prb(context=[])), 2, "context",
         skips=((2, "context"),), good=1),
    Case("prb-context-last-turn-blank", "prb_blank_turn.jsonl",
         jsonl(PRB_GOOD, prb(context=[{"role": "user", "content": "  "}])), 2, "context",
         skips=((2, "context"),), good=1),
    Case("prb-context-null", "prb_null_context.jsonl", jsonl(PRB_GOOD, prb(context=None)), 2, "context",
         skips=((2, "context"),), good=1),
    Case("prb-context-number", "prb_number_context.jsonl", jsonl(prb(context=12), PRB_GOOD), 1, "context",
         skips=((1, "context"),), good=1),
    Case("prb-chosen-message-without-content", "prb_chosen.jsonl",
         jsonl(PRB_GOOD, prb(chosen={"role": "assistant"})), 2, "chosen", skips=((2, "chosen"),), good=1),
    Case("prb-rejected-messages-end-with-user", "prb_rejected.jsonl",
         jsonl(PRB_GOOD, prb(rejected=[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}])),
         2, "rejected", skips=((2, "rejected"),), good=1),
    # .jsonl: HH-RLHF transcripts
    Case("hh-rejected-shares-no-prompt", "hh_unrelated.jsonl", jsonl(HH_GOOD, {**HH_GOOD, "rejected": TRANSCRIPT_BAD}),
         2, "rejected", skips=((2, "rejected"),), good=1),
    Case("hh-rejected-not-a-transcript", "hh_rejected_list.jsonl", jsonl({**HH_GOOD, "rejected": [1]}, HH_GOOD),
         1, "rejected", skips=((1, "rejected"),), good=1),
    Case("hh-chosen-empty-reply", "hh_empty_reply.jsonl",
         jsonl(HH_GOOD, {"chosen": "\n\nHuman: Hi\n\nAssistant:", "rejected": "\n\nHuman: Hi\n\nAssistant: No."}),
         2, "chosen", skips=((2, "chosen"),), good=1),
    Case("hh-empty-human-turn", "hh_empty_human.jsonl",
         jsonl(HH_GOOD, {"chosen": "Human:\n\nAssistant: a", "rejected": "Human:\n\nAssistant: b"}),
         2, "chosen", skips=((2, "chosen"),), good=1),
    Case("hh-style-prompt-bad-response", "hh_prompt.jsonl",
         jsonl(good(prompt="Human: Hi\n\nAssistant:"), good(prompt="Human: Hi\n\nAssistant:", chosen={"text": "x"})),
         2, "chosen", skips=((2, "chosen"),), good=1),
    # .jsonl.gz
    Case("gz-truncated", "truncated.jsonl.gz", gz_truncated),
    Case("gz-corrupt-deflate-data", "corrupt.jsonl.gz", gz_corrupt),
    Case("gz-not-gzip", "plain.jsonl.gz", jsonl(GOOD)),
    Case("gz-bad-lines-inside", "lines.jsonl.gz", gz(GOOD, "{oops", GOOD, b'{"prompt": "\xff\xfe"}', good(chosen=""),
                                                      GOOD),
         2, None, skips=((2, None), (4, None), (5, "chosen")), good=3),
    # .json
    Case("json-top-level-string", "string.json", json_doc("just text")),
    Case("json-top-level-number", "number.json", json_doc(42)),
    Case("json-top-level-object", "object.json", json_doc({"rows": [GOOD]})),
    Case("json-invalid", "invalid.json", raw(b'[{"prompt": "q", "chosen": "a", ')),
    Case("json-non-utf8", "latin1.json", raw(b'[{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}]')),
    Case("json-nested-too-deep", "deep.json", raw(DEEP.encode())),
    Case("json-empty-list", "empty_list.json", json_doc([])),
    Case("json-empty-file", "empty.json", raw(b"")),
    Case("json-element-not-an-object", "elements.json", json_doc([GOOD, 5, GOOD, "x"]), 2, None,
         skips=((2, None), (4, None)), good=2),
    Case("json-wrong-types", "types.json", json_doc([GOOD, good(prompt=["q"]), good(rejected={"a": 1})]),
         2, "prompt", skips=((2, "prompt"), (3, "rejected")), good=1),
    # .csv
    Case("csv-non-utf8-cell", "latin1.csv", raw(b"prompt,chosen,rejected\nq,a,b\nq,caf\xe9,b\nq,c,d\n"),
         2, "chosen", skips=((2, "chosen"),), good=2),
    Case("csv-non-utf8-header", "latin1_header.csv", raw(b"prompt,ch\xf6sen,rejected\nq,a,b\n")),
    Case("csv-missing-column", "no_rejected.csv", raw(b"prompt,chosen\nq,a\nq2,b\n"), 1, "rejected"),
    Case("csv-extra-cells", "extra.csv", raw(b"prompt,chosen,rejected\nq,a,b\nq,a,b,surplus\n"), 2, None,
         skips=((2, None),), good=1),
    Case("csv-short-row", "short.csv", raw(b"prompt,chosen,rejected\nq,a\nq,a,b\n"), 1, "rejected",
         skips=((1, "rejected"),), good=1),
    Case("csv-empty-cell", "empty_cell.csv", raw(b"prompt,chosen,rejected\nq,a,b\n,a,b\n"), 2, "prompt",
         skips=((2, "prompt"),), good=1),
    Case("csv-unterminated-quote", "quote.csv", raw(b'prompt,chosen,rejected\nq,a,b\n"q,a,b\nq,a,b\n'),
         2, "chosen", skips=((2, "chosen"),), good=1),
    Case("csv-context-invalid-json", "context.csv",
         raw(b'context,chosen,rejected\n"[{""role"": ""user""",a,b\n"[{""role"": ""user"", ""content"": '
                  b'""hi""}]",a,b\n'), 1, "context", skips=((1, "context"),), good=1),
    Case("csv-context-nested-too-deep", "deep_context.csv",
         raw(b"context,chosen,rejected\nhi,a,b\n" + DEEP.encode() + b",a,b\n"), 2, "context",
         skips=((2, "context"),), good=1),
    Case("csv-context-integer-too-long", "int_context.csv",
         raw(b"context,chosen,rejected\n[" + HUGE_INT.encode() + b"],a,b\nhi,a,b\n"), 1, "context",
         skips=((1, "context"),), good=1),
    Case("csv-header-only", "header.csv", raw(b"prompt,chosen,rejected\n")),
    Case("csv-empty-file", "empty.csv", raw(b"")),
    # .parquet
    Case("parquet-chosen-int-column", "chosen_int.parquet",
         parquet({"prompt": ["a", "b"], "chosen": [1, 2], "rejected": ["x", "y"]}), 1, "chosen"),
    Case("parquet-null-rejected", "null_rejected.parquet",
         parquet({"prompt": ["a", "b", "c"], "chosen": ["x", "y", "z"], "rejected": ["n", None, "n"]}),
         2, "rejected", skips=((2, "rejected"),), good=2),
    Case("parquet-context-list-of-int", "context_ints.parquet",
         parquet({"context": [[1, 2]], "chosen": ["x"], "rejected": ["y"]}), 1, "context"),
    Case("parquet-context-bad-role", "context_role.parquet",
         parquet({"context": [[{"role": "user", "content": "q"}], [{"role": None, "content": "q"}]],
                  "chosen": ["x", "y"], "rejected": ["n", "n"]}), 2, "context", skips=((2, "context"),), good=1),
    Case("parquet-user-id-list", "user_id_list.parquet",
         parquet({"prompt": ["a"], "chosen": ["x"], "rejected": ["y"], "user_id": [["u1"]]}), 1, "user_id"),
    Case("parquet-profile-double", "profile_double.parquet",
         parquet({"prompt": ["a"], "chosen": ["x"], "rejected": ["y"], "user_profile": [0.5]}), 1, "user_profile"),
    Case("parquet-record-id-bytes", "id_bytes.parquet",
         parquet({"prompt": ["a"], "chosen": ["x"], "rejected": ["y"], "pair_id": [b"p1"]}), 1, "pair_id"),
    Case("parquet-missing-rejected-column", "no_rejected.parquet", parquet({"prompt": ["a"], "chosen": ["x"]}),
         1, "rejected"),
    Case("parquet-timestamp-out-of-range", "timestamps.parquet", parquet_timestamps, 2, "when",
         skips=((2, "when"),), good=2),
    Case("parquet-no-rows", "no_rows.parquet", parquet({"prompt": [], "chosen": [], "rejected": []})),
    Case("parquet-truncated", "truncated.parquet", parquet_truncated),
    Case("parquet-not-parquet", "text.parquet", raw(b"prompt,chosen,rejected\nq,a,b\n")),
    # datasets folders (save_to_disk)
    Case("datasets-null-chosen", "ds_null_chosen",
         dataset([GOOD, good(chosen=None), GOOD]), 2, "chosen", skips=((2, "chosen"),), good=2),
    Case("datasets-prompt-wrong-type", "ds_prompt_int", dataset([good(prompt=1), good(prompt=2)]), 1, "prompt"),
    Case("datasets-context-bad-role", "ds_context_role",
         dataset([PRB_GOOD, prb(context=[{"role": "robot", "content": "x"}])]), 2, "context",
         skips=((2, "context"),), good=1),
    Case("datasets-context-content-null", "ds_context_content",
         dataset([prb(context=[{"role": "user", "content": None}]), PRB_GOOD]), 1, "context",
         skips=((1, "context"),), good=1),
    Case("datasets-timestamp-out-of-range", "ds_timestamps", dataset(table=timestamp_table), 2, "when",
         skips=((2, "when"),), good=2),
    Case("datasets-dict-bad-split", "ds_dict",
         dataset_dict({"train": [GOOD, GOOD], "test": [good(rejected=...)]}), 1, "rejected", part="test",
         skips=((1, "rejected"),), good=2),
    Case("datasets-state-json-invalid", "ds_state_invalid", dataset([GOOD], damage=write_file("state.json", "{"))),
    Case("datasets-state-json-empty", "ds_state_empty", dataset([GOOD], damage=write_file("state.json", "{}"))),
    Case("datasets-info-json-a-list", "ds_info_list",
         dataset([GOOD], damage=write_file("dataset_info.json", "[1]"))),
    Case("datasets-arrow-truncated", "ds_arrow_truncated", dataset([GOOD] * 5, damage=truncate_arrow)),
    Case("datasets-arrow-missing", "ds_arrow_missing", dataset([GOOD], damage=remove_arrow)),
    Case("datasets-dict-json-wrong", "ds_dict_json",
         dataset_dict({"train": [GOOD]}, damage=write_file("dataset_dict.json", '{"splits": 5}'))),
    Case("datasets-no-rows", "ds_empty", dataset(table=empty_table)),
]
BY_ID = {case.id: case for case in CASES}


def columns_of(case: Case) -> dict[str, str] | None:
    """The column mapping the case's ``--columns`` names (``field=column,...``), or None."""
    if "--columns" not in case.args:
        return None
    spec = case.args[case.args.index("--columns") + 1]
    return dict((key.strip(), value.strip()) for key, _, value in (part.partition("=") for part in spec.split(",")))


def source_of(case: Case, path: Path) -> str:
    """How an error names the case's source (``path[part]`` for a split of a ``datasets`` folder)."""
    return f"{path}[{case.part}]" if case.part else str(path)


def where(source: str, record: int | None, field: str | None) -> str:
    """How a DataError names what is at fault: ``source, record N, field 'f'``."""
    return source + (f", record {record}" if record is not None else "") + (f", field '{field}'" if field else "")
