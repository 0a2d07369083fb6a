"""Persona inference over a whole preference file, written as it goes and resumable.

Finished records are appended to a progress file beside the output as they complete; a
re-run reads it and skips them. When every record has been tried, the output is written
in input order: each source row as it was read, plus ``chosen_persona`` and
``rejected_persona`` (and ``persona_error`` with the reason for a record whose calls kept
failing, whose personas are then empty). The progress file is removed after that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from personae.data import PreferenceRecord, append_jsonl, read_jsonl_rows, write_rows
from personae.lm import Cost, CostMeter
from personae.programs import Outcome, PersonaInference, run_batch

__all__ = ["InferReport", "infer_personas", "progress_path"]

logger = logging.getLogger(__name__)


@dataclass
class InferReport:
    out: Path
    records: int
    inferred: int
    resumed: int
    failed: int
    cost: Cost
    failures: list[tuple[str, str]] = field(default_factory=list)


def _flat_row(record: PreferenceRecord) -> dict[str, Any]:
    """A table row for a record built in Python (no source row to echo)."""
    return {"record_id": record.record_id, "user_id": record.user_id, "prompt": record.prompt,
            "chosen": record.chosen, "rejected": record.rejected, **record.metadata}


def progress_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".progress.jsonl")


def infer_personas(
    records: Sequence[PreferenceRecord],
    out: str | os.PathLike[str],
    *,
    lm: dspy.BaseLM,
    program: PersonaInference | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    on_progress: Callable[[int, int], None] | None = None,
) -> InferReport:
    """Infer both personas for every record and write ``out`` (.jsonl, .json, .csv or .parquet)."""
    out = Path(out)
    program = program or PersonaInference()
    progress = progress_path(out)
    done: dict[str, dict[str, Any]] = {}
    if progress.exists():
        for row in read_jsonl_rows(progress):
            if row.get("error") is None:
                done[row["record_id"]] = row
        logger.info("resuming: %d of %d records already done (%s)", len(done), len(records), progress)
    ids = [r.record_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids are not unique; cannot resume safely")
    todo = [r for r in records if r.record_id not in done]
    meter = CostMeter()
    finished = len(records) - len(todo)
    if on_progress:
        on_progress(finished, len(records))

    def infer(record: PreferenceRecord) -> dict[str, Any]:
        pred = program.for_record(record)
        return {"chosen_persona": pred.chosen_persona, "rejected_persona": pred.rejected_persona}

    def save(outcome: Outcome[dict[str, Any]]) -> None:
        nonlocal finished
        record = todo[outcome.index]
        row = {"record_id": record.record_id, **(outcome.value or {}), "error": outcome.error,
               "attempts": outcome.attempts}
        append_jsonl(row, progress)
        done[record.record_id] = row
        finished += 1
        if on_progress:
            on_progress(finished, len(records))

    out.parent.mkdir(parents=True, exist_ok=True)
    with meter.track():
        run_batch(infer, todo, lm=lm, concurrency=concurrency, max_attempts=max_attempts, on_result=save)

    rows, failures = [], []
    for record in records:
        result = done[record.record_id]
        row = dict(record.raw) if record.raw else _flat_row(record)
        row["chosen_persona"] = result.get("chosen_persona")
        row["rejected_persona"] = result.get("rejected_persona")
        if result.get("error"):
            row["persona_error"] = result["error"]
            failures.append((record.record_id, result["error"]))
        rows.append(row)
    write_rows(rows, out)
    progress.unlink(missing_ok=True)
    return InferReport(out, len(records), len(todo) - len(failures), len(records) - len(todo),
                       len(failures), meter.cost, failures)
