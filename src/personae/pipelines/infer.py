"""Persona inference over a whole preference file, written as it goes and resumable.

Every record's result is appended to a ledger beside the output (``OUT.progress.jsonl``) as
it completes. A re-run, also one over more records (a larger ``--limit``, the whole file
after a sample), reuses every record the ledger holds with the same text, and tries the
failed ones again on fresh samples. The ledger starts with the model, its sampling settings and
the inference program it was made with; a run with another of them stops instead of mixing
results (``fresh=True`` starts a new ledger). When every record has been tried, the output
is written in input order: each source row as it was read, plus ``chosen_persona`` and
``rejected_persona`` (and ``persona_error`` with the reason for a record whose calls kept
failing, whose personas are then empty). The ledger stays, so the next run can build on it.

``out`` is a file (.jsonl, .jsonl.gz, .json, .csv, .parquet) or, when its name has no
suffix, a ``datasets`` folder written with ``Dataset.save_to_disk`` (loadable with
``datasets.load_from_disk`` or ``personae.data.load_preferences``).

:func:`personae.data.read_persona_demos` reads a domain's own few-shot examples for the
inference program (``PersonaInference(demos=read_persona_demos(path))``).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from personae.data import SUFFIXES, PreferenceRecord, write_rows
from personae.errors import ConfigError, DataError
from personae.lm import Cost
from personae.programs import PersonaInference, program_digest
from personae.runs import (
    Counts,
    Executor,
    Ledger,
    Outcome,
    Progress,
    RetryPolicy,
    ThreadExecutor,
    lm_fingerprint,
    record_key,
    run_items,
)

__all__ = ["InferReport", "infer_personas", "progress_path", "write_dataset_folder"]

_DATASETS_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")

logger = logging.getLogger(__name__)


@dataclass
class InferReport:
    """What :func:`infer_personas` did: the output written, how many records there were, inferred now,
    resumed from an earlier run and failed (``failures`` names each with why), the counts and the
    cost of new calls."""
    out: Path
    records: int
    inferred: int
    resumed: int
    failed: int
    cost: Cost
    failures: list[tuple[str, str]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)


def _flat_row(record: PreferenceRecord) -> dict[str, Any]:
    """A table row for a record built in Python (no source row to echo)."""
    return {"record_id": record.record_id, "user_id": record.user_id, "prompt": record.prompt,
            "chosen": record.chosen, "rejected": record.rejected, **record.metadata}


def progress_path(out: str | os.PathLike[str]) -> Path:
    """The ledger of per-record results kept beside ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".progress.jsonl")


def _legacy_key(row: Mapping[str, Any]) -> str | None:  # rows of version-1 ledgers
    return f"{row['record_id']}@{row['digest']}" if "record_id" in row and "digest" in row else None


def _output_format(out: Path) -> str:
    """``"file"`` for a table file, ``"datasets"`` for a name without suffix; else ConfigError."""
    name = out.name.lower()
    if any(name.endswith(suffix) for suffix, _ in SUFFIXES):
        return "file"
    if out.suffix:
        raise ConfigError(f"cannot write {out}: use a .jsonl, .jsonl.gz, .json, .csv or .parquet file, "
                          "or a name without suffix for a datasets folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"cannot write a datasets folder at {out}: a file of that name exists")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).is_file() for m in _DATASETS_MARKERS):
        raise ConfigError(f"{out} is a folder that does not hold a datasets save; it would be replaced. "
                          "Choose another --out")
    return "datasets"


def write_dataset_folder(rows: Sequence[Mapping[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Write ``rows`` as a ``datasets`` folder (``Dataset.save_to_disk``), replacing ``out`` atomically.

    Every row gets every column (None where it had none), so no column is lost to the
    first row's keys.
    """
    import datasets

    out = Path(out)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = [{key: row.get(key) for key in columns} for row in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = out.with_name(f".{out.name}.{tag}.tmp")
    old = out.with_name(f".{out.name}.{tag}.old")
    try:
        try:
            dataset = datasets.Dataset.from_list(table)
        except (TypeError, ValueError) as exc:  # pyarrow's ArrowInvalid/ArrowTypeError are among these
            raise DataError(f"a datasets folder cannot store these rows (mixed types in a column?): {exc}",
                            source=str(out)) from exc
        dataset.save_to_disk(str(tmp))
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def infer_personas(
    records: Sequence[PreferenceRecord],
    out: str | os.PathLike[str],
    *,
    lm: dspy.BaseLM,
    program: PersonaInference | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    executor: Executor | None = None,
    progress: Progress | None = None,
    fresh: bool = False,
) -> InferReport:
    """Infer both personas for every record and write ``out``.

    ``out`` is a .jsonl, .jsonl.gz, .json, .csv or .parquet file, or a ``datasets`` folder when
    its name has no suffix. ``program`` is the inference program (default
    :class:`PersonaInference`; e.g. a compiled one, ``PersonaInference().load(path)``).
    Results an earlier run left in the ledger are reused (see the module's notes); ``fresh``
    discards them. ``executor`` runs the records (default: ``concurrency`` threads).
    """
    out = Path(out)
    fmt = _output_format(out)
    program = (program or PersonaInference()).with_attempts(1)  # the run retries each record
    ids = [r.record_id for r in records]
    if len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"record id {repeated!r} repeats; cannot resume safely", source=str(out),
                        field="record_id")
    out.parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(progress_path(out), kind="infer", fresh=fresh, legacy_key=_legacy_key,
                    fingerprint={**lm_fingerprint(lm), "program": program_digest(program)})
    if ledger.rows:
        logger.info("resuming from %s (%d results there)", ledger.path, len(ledger.rows))

    def infer(record: PreferenceRecord) -> dict[str, Any]:
        pred = program.for_record(record)
        return {"chosen_persona": pred.chosen_persona, "rejected_persona": pred.rejected_persona}

    def row(record: PreferenceRecord, outcome: Outcome[dict[str, Any]]) -> dict[str, Any]:
        return {"record_id": record.record_id, **(outcome.value or {"chosen_persona": None, "rejected_persona": None})}

    run = run_items(infer, records, key=record_key, row=row, ledger=ledger, lm=lm,
                    policy=RetryPolicy(max_attempts=max_attempts), executor=executor or ThreadExecutor(concurrency),
                    progress=progress, label="infer-personas")
    rows, failures = [], []
    for record, result in zip(records, run.rows, strict=True):
        table_row = dict(record.raw) if record.raw else _flat_row(record)
        table_row["chosen_persona"] = result.get("chosen_persona")
        table_row["rejected_persona"] = result.get("rejected_persona")
        if result.get("error"):
            table_row["persona_error"] = result["error"]
            failures.append((record.record_id, str(result["error"])))
        rows.append(table_row)
    if fmt == "datasets":
        write_dataset_folder(rows, out)
    else:
        write_rows(rows, out)
    counts = run.counts
    return InferReport(out, len(records), counts.succeeded, counts.resumed, counts.failed, run.cost, failures,
                       counts)
