"""Persona inference over a whole preference file, written as it goes and resumable.

Every record's result is appended to a ledger beside the output (``OUT.progress.jsonl``) as it
completes, and the run log (with its cost) is kept in ``OUT.run.json``. A re-run, also one over
more records (a larger ``--limit``, the whole file after a sample), reuses every record the
ledger holds with the same text, and tries the failed ones again on fresh samples. The ledger
starts with the model, its sampling settings and the inference program it was made with; a run
with another of them stops instead of mixing results (``fresh=True`` starts a new ledger). When
every record has been tried, the output is written in input order: each source row as it was
read, plus ``chosen_persona`` and ``rejected_persona`` (and ``persona_error`` with the reason
for a record whose calls kept failing, whose personas are then empty). The ledger stays, so the
next run can build on it.

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
from pydantic import BaseModel, Field
from typing_extensions import override

from personae.data import SUFFIXES, PreferenceRecord, write_rows
from personae.errors import ConfigError, DataError
from personae.lm import Cost
from personae.programs import PersonaInference, program_digest
from personae.runs import (
    BaseTask,
    Counts,
    Executor,
    Finished,
    Outcome,
    Progress,
    RunLog,
    RunSpec,
    package_versions,
    record_key,
    run,
)

__all__ = ["InferLog", "InferReport", "InferResults", "InferTask", "infer_personas", "progress_path",
           "write_dataset_folder"]

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


class InferResults(BaseModel):
    """What persona inference did: records, inferred now, resumed, failed (each with why)."""

    records: int = 0
    inferred: int = 0
    resumed: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = Field(default_factory=list)


InferLog = RunLog[dict[str, Any], InferResults]
"""The run log of ``personae infer-personas`` (``OUT.run.json``)."""


class InferTask(BaseTask[PreferenceRecord, dict[str, Any], InferLog]):
    """Infer both personas of every record; the output ``OUT`` is a file or a datasets folder, its
    ledger ``OUT.progress.jsonl`` and its run log ``OUT.run.json``. After the run, ``table`` holds
    the output rows in input order (each source row with its personas, or ``persona_error``)."""

    name = "infer"

    def __init__(self, records: Sequence[PreferenceRecord], *, program: PersonaInference | None = None,
                 config: dict[str, Any] | None = None, source: str = "<records>") -> None:
        ids = [r.record_id for r in records]
        if len(set(ids)) != len(ids):
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"record id {repeated!r} repeats; cannot resume safely", source=source,
                            field="record_id")
        self.records, self.config = records, dict(config or {})
        self.program = (program or PersonaInference()).with_attempts(1)  # the run retries each record
        self.state = {"program": program_digest(self.program)}
        self.table: list[dict[str, Any]] = []
        self.failures: list[tuple[str, str]] = []

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> InferLog:
        return InferLog(command="infer-personas", config=self.config, versions=package_versions(),
                        results=InferResults())

    @override
    def items(self, stage: str, done: Finished) -> Sequence[PreferenceRecord]:
        return self.records

    @override
    def key(self, item: PreferenceRecord) -> str:
        return record_key(item)

    @override
    def call(self, item: PreferenceRecord) -> dict[str, Any]:
        pred = self.program.for_record(item)
        return {"chosen_persona": pred.chosen_persona, "rejected_persona": pred.rejected_persona}

    @override
    def row(self, item: PreferenceRecord, outcome: Outcome[dict[str, Any]]) -> dict[str, Any]:
        return {"record_id": item.record_id, **(outcome.value or {"chosen_persona": None, "rejected_persona": None})}

    @override
    def legacy_key(self, row: Mapping[str, Any]) -> str | None:  # rows of version-1 ledgers
        return f"{row['record_id']}@{row['digest']}" if "record_id" in row and "digest" in row else None

    @override
    def summary(self, started: InferLog, done: Finished) -> InferLog:
        self.table, self.failures = [], []
        for record, result in zip(self.records, done.all_rows, strict=True):
            table_row = dict(record.raw) if record.raw else _flat_row(record)
            table_row["chosen_persona"] = result.get("chosen_persona")
            table_row["rejected_persona"] = result.get("rejected_persona")
            if result.get("error"):
                table_row["persona_error"] = result["error"]
                self.failures.append((record.record_id, str(result["error"])))
            self.table.append(table_row)
        counts = done.counts
        results = InferResults(records=len(self.records), inferred=counts.succeeded, resumed=counts.resumed,
                               failed=counts.failed, failures=self.failures)
        return started.model_copy(update={"results": results})

    @override
    def paths(self, out: Path) -> tuple[Path, Path | None]:
        return progress_path(out), out.with_name(out.name + ".run.json")


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
    config: dict[str, Any] | None = None,
) -> InferReport:
    """Infer both personas for every record and write ``out``: :class:`InferTask` run by
    :func:`personae.runs.run`, then the output written.

    ``out`` is a .jsonl, .jsonl.gz, .json, .csv or .parquet file, or a ``datasets`` folder when
    its name has no suffix. ``program`` is the inference program (default
    :class:`PersonaInference`; e.g. a compiled one, ``PersonaInference().load(path)``).
    Results an earlier run left in the ledger are reused (see the module's notes); ``fresh``
    discards them. ``executor`` runs the records (default: ``concurrency`` threads); ``config``
    is kept in the run log.
    """
    out = Path(out)
    fmt = _output_format(out)
    task = InferTask(records, program=program, config=config, source=str(out))
    log = run(task, RunSpec(concurrency=concurrency, max_attempts=max_attempts, out=str(out), fresh=fresh), lm=lm,
              executor=executor, progress=progress)
    if fmt == "datasets":
        write_dataset_folder(task.table, out)
    else:
        write_rows(task.table, out)
    counts = log.counts
    return InferReport(out, len(records), counts.succeeded, counts.resumed, counts.failed, log.cost, task.failures,
                       counts)
