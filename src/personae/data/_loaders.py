"""Loading preference data from files, folders, hub data sets or rows in memory."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personae.data._io import SUFFIXES, json_kind, json_value, parse_line
from personae.data._records import PreferenceData, PreferenceRecord, SkippedRecord
from personae.data._rows import FIELD_COLUMNS, normalise_split, record_from_row
from personae.errors import ConfigError, DataError

__all__ = ["FORMATS", "load_preferences"]

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "json", "csv", "parquet", "datasets")
_DATASETS_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_WARN_EACH = 10  # skipped records logged one by one; the rest only in the summary
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as errors="surrogateescape" keeps them

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
    other_splits: set[str | None] = set()  # splits of the records ``split`` left out
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
                else:
                    other_splits.add(record.split)
        finally:
            close = getattr(part.rows, "close", None)
            if close is not None:
                close()
    data = PreferenceData(records, skipped=skipped, source=label)
    if not records and limit != 0:
        raise DataError(_no_records(data, split, other_splits), source=label)
    if skipped:
        logger.warning("%s: %s", label, data.skipped_summary())
    users = len({r.user_id for r in records})
    logger.info("loaded %d records (%d users) from %s", len(records), users, label)
    return data


def _no_records(data: PreferenceData, split: str | None, other_splits: set[str | None]) -> str:
    """Why a source gave no records: all invalid, none of ``split``, or none at all."""
    if data.skipped:
        return f"no valid records; {data.skipped_summary()}"
    if other_splits:
        names = sorted(name for name in other_splits if name is not None)
        return (f"no records of split {split!r}; the records have "
                + (f"splits {', '.join(names)}" if names else "no split column"))
    return "no records"


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
        except Exception as exc:  # a damaged folder fails in many ways: bad json, missing files, arrow errors
            raise DataError(f"cannot load the datasets folder: {type(exc).__name__}: {exc}", source=text) from exc
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
        return [_Part(f"{hub_id}[{split}]", f"{name}:{split}", _dataset_rows(loaded, f"{hub_id}[{split}]"),
                      split=split)]
    return _dataset_parts(loaded, hub_id, name, None)


def _is_dataset_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(hasattr(v, "column_names")
                                                              for v in value.values())


def _dataset_parts(loaded: Any, label: str, name: str, split: str | None) -> list[_Part]:
    """One part per split of a DatasetDict (or only ``split``); a lone Dataset is one part."""
    if not _is_dataset_dict(loaded):
        return [_Part(label, name, _dataset_rows(loaded, label), keep_split=normalise_split(split))]
    names = list(loaded)
    if split is not None:
        if split not in loaded:
            raise DataError(f"no split {split!r}; the splits are {', '.join(names)}", source=label)
        names = [split]
    return [_Part(f"{label}[{key}]", f"{name}:{key}", _dataset_rows(loaded[key], f"{label}[{key}]"), split=key)
            for key in names]


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


def _conversion_errors() -> tuple[type[Exception], ...]:
    """What turning an arrow value into a Python one raises (a timestamp out of Python's range...)."""
    import pyarrow as pa

    return ValueError, OverflowError, pa.ArrowException


def _dataset_rows(dataset: Any, source: str) -> Rows:
    """The rows of a ``datasets`` Dataset; a row that cannot be read as Python values is a DataError
    naming it and its column, and the rows after it are still read."""
    errors = _conversion_errors()
    number = 0
    try:
        for number, row in enumerate(dataset, 1):
            yield number, row
        return
    except errors:
        pass
    if not hasattr(dataset, "select_columns"):  # not a map-style Dataset: no way to read past the bad row
        yield number + 1, DataError("cannot be read as Python values", source=source, record=number + 1)
        return
    for index in range(number, len(dataset)):
        try:
            row = dataset[index]
        except errors as exc:
            row = DataError(f"cannot be read as a Python value: {type(exc).__name__}: {exc}", source=source,
                            record=index + 1, field=_bad_column(dataset, index, errors))
        yield index + 1, row


def _bad_column(dataset: Any, index: int, errors: tuple[type[Exception], ...]) -> str | None:
    """The first column of row ``index`` that cannot be read as a Python value."""
    for name in dataset.column_names:
        try:
            dataset.select_columns([name])[index]
        except errors:
            return str(name)
    return None


def _read_jsonl(path: Path, source: str) -> Rows:
    import gzip
    import zlib

    number = 0
    try:
        # Bytes, decoded line by line: a line that is not UTF-8 is that record's error, not the file's.
        with gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                if raw.strip():
                    try:  # a byte-order mark opens the file, not the record
                        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                    except UnicodeDecodeError as exc:
                        yield number, DataError(f"not valid UTF-8: {exc}", source=source, record=number)
                        continue
                    yield number, parse_line(line, source, number)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: not gzip, truncated, corrupt
        raise DataError(f"cannot read{f' past line {number}' if number else ''}: {exc}", source=source) from exc


def _read_json(path: Path, source: str) -> Rows:
    try:
        rows = json_value(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", source=source) from exc
    except ValueError as exc:
        raise DataError(f"not valid JSON: {exc}", source=source) from exc
    if not isinstance(rows, list):
        raise DataError(f"expected a JSON list of objects, got {json_kind(rows)}", source=source)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            row = DataError(f"not a JSON object: got {json_kind(row)}", source=source, record=number)
        yield number, row


def _read_csv(path: Path, source: str) -> Rows:
    import csv

    old_limit = csv.field_size_limit(2**31 - 1)  # long responses exceed the default 128 KiB
    number = 0
    try:
        # Bytes that are not UTF-8 are kept as surrogates, so the cell holding them is named.
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            reader = csv.DictReader(fh)
            bad_header = next((name for name in reader.fieldnames or () if _UNDECODABLE.search(name)), None)
            if bad_header is not None:
                raise DataError(f"the header is not valid UTF-8: column {ascii(bad_header)}", source=source)
            for number, row in enumerate(reader, 1):
                bad = next((key for key, cell in row.items()
                            if isinstance(cell, str) and _UNDECODABLE.search(cell)), None)
                if None in row:
                    yield number, DataError("more cells than header columns", source=source, record=number)
                elif bad is not None:
                    yield number, DataError("not valid UTF-8", source=source, record=number, field=bad)
                else:
                    yield number, row
    except OSError as exc:
        raise DataError(f"cannot read: {exc}", source=source) from exc
    except csv.Error as exc:
        raise DataError(f"not valid csv: {exc}", source=source, record=number + 1) from exc
    finally:
        csv.field_size_limit(old_limit)


def _read_parquet(path: Path, source: str) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors = _conversion_errors()
    try:
        with pq.ParquetFile(path) as table:
            number = 0
            for batch in table.iter_batches(batch_size=1024):
                try:
                    rows: list[Any] = batch.to_pylist()
                except errors:  # some value has no Python form: find its row and column
                    rows = [_arrow_row(batch, index, source, number + index + 1, errors)
                            for index in range(batch.num_rows)]
                for row in rows:
                    number += 1
                    yield number, row
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"not a readable parquet file: {exc}", source=source) from exc


def _arrow_row(batch: Any, index: int, source: str, number: int,
               errors: tuple[type[Exception], ...]) -> dict[str, Any] | DataError:
    """Row ``index`` of an arrow batch as a dict, or the DataError naming the column that cannot be read."""
    row = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            row[name] = column[index].as_py()
        except errors as exc:
            return DataError(f"cannot be read as a Python value: {type(exc).__name__}: {exc}", source=source,
                             record=number, field=name)
    return row
