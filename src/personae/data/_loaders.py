"""Loading preference data from files, folders, hub data sets or rows in memory."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personae.data._io import SUFFIXES, parse_line
from personae.data._records import PreferenceData, PreferenceRecord, SkippedRecord
from personae.data._rows import FIELD_COLUMNS, normalise_split, record_from_row
from personae.errors import ConfigError, DataError

__all__ = ["FORMATS", "load_preferences"]

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "json", "csv", "parquet", "datasets")
_DATASETS_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_WARN_EACH = 10  # skipped records logged one by one; the rest only in the summary

Rows = Iterator[tuple[int, Any]]  # (1-based record number, row or the DataError reading it)


@dataclass
class _Part:
    source: str  # named in errors
    name: str  # prefix of default record ids
    rows: Rows
    split: str | None = None  # the split its records get when a row names none
    keep_split: str | None = None  # keep only records of this split


def load_preferences(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    columns: Mapping[str, str] | None = None,
    format: str | None = None,  # the public option shadows the builtin
    split: str | None = None,
    skip_invalid: bool = False,
    limit: int | None = None,
) -> PreferenceData:
    """Load pairwise preferences from a file, a ``save_to_disk`` folder, a hub id, or rows.

    ``columns`` maps record fields to source columns (``{"prompt": "question"}``). ``format``
    is one of ``jsonl, json, csv, parquet, datasets``; by default it follows the suffix
    (``.jsonl``, ``.jsonl.gz``, ``.json``, ``.csv``, ``.parquet``), else a folder written by
    ``datasets``, else a hub id. ``split`` picks one split of a ``DatasetDict`` or hub data
    set (default: all, each record's ``split`` set from its split name); for other sources it
    keeps only the records whose ``split`` column names it. Columns with no record field go
    to ``metadata`` (a ``metadata`` object column is merged in, so :meth:`PreferenceRecord.to_dict`
    rows load back as the same records). A malformed record raises
    :class:`DataError`, unless ``skip_invalid``: then it is logged and listed in ``.skipped``.
    ``limit`` stops after that many valid records.
    """
    if columns:
        unknown = sorted(set(columns) - set(FIELD_COLUMNS))
        if unknown:
            raise ConfigError(f"columns: unknown field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(FIELD_COLUMNS)}")
    if format is not None and format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    label, parts = _open(source, format, split)
    records: list[PreferenceRecord] = []
    skipped: list[SkippedRecord] = []
    for part in parts:
        try:
            for number, row in part.rows:
                if limit is not None and len(records) >= limit:
                    break
                try:
                    if isinstance(row, DataError):
                        raise row
                    record = record_from_row(row, source=part.source, name=part.name, number=number,
                                             columns=columns, split=part.split)
                except DataError as exc:
                    if not skip_invalid:
                        raise
                    if len(skipped) < _WARN_EACH:
                        logger.warning("skipping invalid record: %s", exc)
                    skipped.append(SkippedRecord(exc.source, exc.record or number, exc.field, exc.message))
                    continue
                if part.keep_split is None or record.split == part.keep_split:
                    records.append(record)
        finally:
            close = getattr(part.rows, "close", None)
            if close is not None:
                close()
    data = PreferenceData(records, skipped=skipped, source=label)
    if skipped:
        logger.warning("%s: %s", label, data.skipped_summary())
    users = len({r.user_id for r in records})
    logger.info("loaded %d records (%d users) from %s", len(records), users, label)
    return data


def _open(source: Any, fmt: str | None, split: str | None) -> tuple[str, list[_Part]]:
    """The parts of a source (one per split of a DatasetDict) and its label."""
    if not isinstance(source, (str, os.PathLike)):
        return "<rows>", _open_rows(source, split)
    text = os.fspath(source)
    path = Path(text)
    fmt = fmt or _format_of(path)
    keep = normalise_split(split)
    if fmt in ("jsonl", "json", "csv", "parquet"):
        if not path.is_file():
            raise DataError("no such file" if not path.exists() else "not a file", source=text)
        readers = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}
        return text, [_Part(text, path.name, readers[fmt](path, text), keep_split=keep)]
    if fmt == "datasets" and path.exists():
        import datasets

        try:
            loaded = datasets.load_from_disk(text)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load the datasets folder: {exc}", source=text) from exc
        return text, _dataset_parts(loaded, text, path.name, split)
    if path.is_dir():
        raise DataError("a folder not written by datasets' save_to_disk (no dataset_info.json, "
                        "state.json or dataset_dict.json); pass a file or format=", source=text)
    if path.exists():
        raise DataError("cannot tell the format from the file name; pass format= "
                        f"({', '.join(FORMATS)})", source=text)
    if not _HUB_ID.fullmatch(text) or text.endswith(tuple(s for s, _ in SUFFIXES)):
        raise DataError("no such file or folder", source=text)
    return text, _open_hub(text, split)


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in SUFFIXES:
        if name.endswith(suffix):
            return fmt
    if path.is_dir() and any((path / marker).is_file() for marker in _DATASETS_MARKERS):
        return "datasets"
    return None


def _open_hub(hub_id: str, split: str | None) -> list[_Part]:
    import datasets

    try:
        loaded = datasets.load_dataset(hub_id, split=split)
    except Exception as exc:  # anything from the hub client: network, missing repo, bad split
        raise DataError(f"not a file or folder here, and loading it from the Hugging Face hub failed: {exc}",
                        source=hub_id) from exc
    name = hub_id.rsplit("/", 1)[-1]
    if split is not None:
        return [_Part(f"{hub_id}[{split}]", f"{name}:{split}", _enumerate(loaded), split=split)]
    return _dataset_parts(loaded, hub_id, name, None)


def _is_dataset_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(hasattr(v, "column_names")
                                                              for v in value.values())


def _dataset_parts(loaded: Any, label: str, name: str, split: str | None) -> list[_Part]:
    """One part per split of a DatasetDict (or only ``split``); a lone Dataset is one part."""
    if not _is_dataset_dict(loaded):
        return [_Part(label, name, _enumerate(loaded), keep_split=normalise_split(split))]
    names = list(loaded)
    if split is not None:
        if split not in loaded:
            raise DataError(f"no split {split!r}; the splits are {', '.join(names)}", source=label)
        names = [split]
    return [_Part(f"{label}[{key}]", f"{name}:{key}", _enumerate(loaded[key]), split=key) for key in names]


def _open_rows(source: Any, split: str | None) -> list[_Part]:
    if _is_dataset_dict(source):
        return _dataset_parts(source, "<rows>", "rows", split)
    if isinstance(source, Mapping):
        raise DataError("expected rows (an iterable of mappings), got a single mapping", source="<rows>")
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        source = source.to_dict(orient="records")
    try:
        rows = iter(source)
    except TypeError:
        raise DataError(f"expected a path, a hub id or rows, got {type(source).__name__}",
                        source="<rows>") from None
    return [_Part("<rows>", "rows", _enumerate(rows), keep_split=normalise_split(split))]


def _enumerate(rows: Iterable[Any]) -> Rows:
    yield from enumerate(rows, 1)


def _read_jsonl(path: Path, source: str) -> Rows:
    import gzip

    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield number, parse_line(line, source, number)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read: {exc}", source=source) from exc


def _read_json(path: Path, source: str) -> Rows:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", source=source) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc}", source=source) from exc
    if not isinstance(rows, list):
        raise DataError(f"expected a JSON list of objects, got a {type(rows).__name__}", source=source)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            row = DataError(f"not a JSON object (got {type(row).__name__})", source=source, record=number)
        yield number, row


def _read_csv(path: Path, source: str) -> Rows:
    import csv

    old_limit = csv.field_size_limit(2**31 - 1)  # long responses exceed the default 128 KiB
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for number, row in enumerate(csv.DictReader(fh), 1):
                if None in row:
                    yield number, DataError("more cells than header columns", source=source, record=number)
                else:
                    yield number, row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read: {exc}", source=source) from exc
    finally:
        csv.field_size_limit(old_limit)


def _read_parquet(path: Path, source: str) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as table:
            number = 0
            for batch in table.iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"not a readable parquet file: {exc}", source=source) from exc
