"""Writing result rows (any table format, atomically), and appending/resuming jsonl results."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import IO, Any, cast

from personae.errors import ConfigError, DataError

__all__ = ["SUFFIXES", "append_jsonl", "json_kind", "json_value", "parse_line", "read_jsonl_rows", "write_rows",
           "write_text_atomic"]

logger = logging.getLogger(__name__)

SUFFIXES = (
    (".jsonl.gz", "jsonl"), (".jsonl", "jsonl"), (".json", "json"), (".csv", "csv"), (".parquet", "parquet"),
)
"""File suffixes and the format each means, longest first; shared by the loaders and writers."""
_append_lock = threading.Lock()


def json_value(text: str | bytes) -> Any:
    """``json.loads``, failing only with a ValueError: invalid JSON (a ``JSONDecodeError``), an
    integer too long to convert, or nesting too deep for the parser (a RecursionError there)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to parse") from None


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words: ``an array``, ``a string``, ``null``..."""
    if value is None:
        return "null"
    kinds = ((bool, "a boolean"), (dict, "an object"), (list, "an array"), (str, "a string"),
             ((int, float), "a number"))
    return next((kind for types, kind in kinds if isinstance(value, types)), type(value).__name__)


def parse_line(line: str, source: str, number: int) -> dict[str, Any] | DataError:
    """One jsonl line as an object, or the DataError saying why it is not one (to raise or skip)."""
    try:
        row = json_value(line)
    except ValueError as exc:
        return DataError(f"not valid JSON: {exc}", source=source, record=number)
    if not isinstance(row, dict):
        return DataError(f"not a JSON object: got {json_kind(row)}", source=source, record=number)
    return row


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: a crash never leaves half a file."""
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_rows(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write rows by suffix (.jsonl, .jsonl.gz, .json, .csv, .parquet), atomically; return the path.

    jsonl holds one JSON object a line (``ensure_ascii=False``), json a list; csv cells hold
    lists and dicts as JSON text and None as empty. Parent folders are created.
    """
    import gzip
    import uuid

    path = Path(path)
    fmt = next((fmt for suffix, fmt in SUFFIXES if path.name.lower().endswith(suffix)), None)
    if fmt is None:
        raise ConfigError(f"cannot write {path}: use a .jsonl, .jsonl.gz, .json, .csv or .parquet file")
    table = [dict(row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            if path.name.lower().endswith(".gz"):
                with gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=fh) as gz:
                    _write(fmt, table, cast("IO[bytes]", gz), path)
            else:
                _write(fmt, table, fh, path)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    logger.debug("wrote %d rows to %s", len(table), path)
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default, **kwargs)


def _write(fmt: str, rows: list[dict[str, Any]], fh: IO[bytes], path: Path) -> None:
    if fmt == "jsonl":
        for row in rows:
            fh.write((_dumps(row) + "\n").encode("utf-8"))
    elif fmt == "json":
        fh.write((_dumps(rows, indent=2) + "\n").encode("utf-8"))
    elif fmt == "csv":
        import csv
        import io

        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else _dumps(v) if isinstance(v, (dict, list, tuple)) else v
                             for k, v in row.items()})
        text.flush()
        text.detach()
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {}
        for key in dict.fromkeys(key for row in rows for key in row):
            try:
                columns[key] = pa.array([row.get(key) for row in rows])
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(f"parquet cannot store this column (mixed types?): {exc}",
                                source=str(path), field=key) from exc
        pq.write_table(pa.table(columns), fh)


def append_jsonl(row: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Append one row as a JSON line, flushed and fsync'd (for results written as they come).

    A truncated last line left by a crash is dropped first, so the new row starts a line.
    Safe to call from several threads of one process.
    """
    path = Path(path)
    line = (_dumps(dict(row)) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _append_lock, open(path, "a+b") as fh:
        _repair_tail(fh, path)
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _repair_tail(fh: IO[bytes], path: Path) -> None:
    """End the file with a newline: drop a broken last line, or finish a complete one."""
    end = fh.seek(0, os.SEEK_END)
    if end == 0:
        return
    fh.seek(end - 1)
    if fh.read(1) == b"\n":
        return
    start = end
    while start > 0:  # find the start of the last line
        step = min(start, 65536)
        fh.seek(start - step)
        found = fh.read(step).rfind(b"\n")
        if found >= 0:
            start = start - step + found + 1
            break
        start -= step
    fh.seek(start)
    tail = fh.read()
    try:
        json.loads(tail)
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("%s: dropping a truncated last line (%d bytes)", path, len(tail))
        fh.truncate(start)
    else:
        fh.write(b"\n")


def read_jsonl_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a jsonl file of results, ignoring a truncated last line; a missing file has no rows.

    A malformed line elsewhere raises :class:`DataError`.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows = []
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = parse_line(raw.decode("utf-8-sig" if index == 0 else "utf-8"), str(path), index + 1)
        except UnicodeDecodeError as exc:
            row = DataError(f"not valid UTF-8: {exc}", source=str(path), record=index + 1)
        if isinstance(row, DataError):
            if index == last:
                logger.warning("%s: ignoring a truncated last line (line %d)", path, index + 1)
                break
            raise row
        rows.append(row)
    return rows
