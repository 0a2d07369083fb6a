"""Persona inference over a sharded data set with Ray Data, resumable shard by shard.

A data set too large for one file is a folder (or glob) of shards: ``.parquet``, ``.jsonl`` or
``.jsonl.gz`` files; a ``datasets`` source is cut into shards of ``shard_size`` rows.
:func:`infer_shards` reads each shard with Ray Data, runs persona inference with
``map_batches`` over a pool of Ray actors (each running its batch's records on threads,
through the run layer's retry policy), and writes the shard's rows, each source row with
``chosen_persona``, ``rejected_persona`` and ``persona_error`` added, as parquet files under
``OUT/<shard name>/`` (a local folder or any fsspec URL: ``s3://bucket/personas``).

**Resuming.** A shard's folder is written under a temporary name and renamed when whole; then
a manifest, ``OUT/<shard name>/_personae.json``, is written last: the run's fingerprint (model,
server, sampling, inference program, column mapping), the source shard's size and digest, its
row and failure counts and its cost. A re-run skips every shard whose manifest matches, redoes a
shard whose source changed, and stops before any call when the fingerprint differs (naming
each difference), unless ``fresh``. So a run killed mid-way loses at most the shards in
progress. The manifest lives beside the shard rather than in a local ledger because the shard
itself may live in an object store; files starting with ``_`` or ``.`` are skipped by parquet
readers (``pyarrow.dataset``, ``pandas.read_parquet``, ``ray.data.read_parquet``), so ``OUT``
reads back as one table.

**Failures.** An item whose LM calls kept failing gets ``persona_error`` with the reason (counted
by kind); a malformed row stops the run with a :class:`~personae.errors.DataError` naming the
shard, the row (its ``record_id`` column, else its position in the batch) and the field,
unless ``skip_invalid``: then the row keeps empty personas and ``persona_error`` says why.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dspy
from typing_extensions import override

from personae.errors import ConfigError, DataError
from personae.lm import Cost
from personae.programs import PersonaInference, program_digest
from personae.runs import (
    BaseTask,
    Counts,
    Finished,
    Ledger,
    ManifestLedger,
    Outcome,
    RayExecutor,
    RunLog,
    RunSpec,
    ThreadExecutor,
    package_versions,
    run,
    worker_payload,
)

__all__ = ["MANIFEST", "InferShardsTask", "ShardReport", "ShardsReport", "infer_shards", "is_sharded", "list_shards"]

logger = logging.getLogger(__name__)

MANIFEST = "_personae.json"
SHARD_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")
PERSONA_COLUMNS = ("chosen_persona", "rejected_persona", "persona_error")


@dataclass
class ShardReport:
    """One shard of :func:`infer_shards`: its name, rows and failed rows (``failures`` by kind), whether
    it was done by an earlier run (``resumed``), and the cost of new calls."""
    shard: str
    rows: int
    failed: int
    resumed: bool
    cost: Cost = field(default_factory=Cost)
    failures: dict[str, int] = field(default_factory=dict)


@dataclass
class ShardsReport:
    """What :func:`infer_shards` did, shard by shard, with the counts (in records) and the cost of new calls."""

    out: str
    shards: list[ShardReport] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    cost: Cost = field(default_factory=Cost)
    failed_shards: list[tuple[str, str]] = field(default_factory=list)
    """Shards not written (a failure of the whole shard, e.g. the LM server gone), with why: a re-run
    does them again."""


def is_sharded(source: str) -> bool:
    """Whether ``source`` names a folder of shards or a glob (not a file or a ``datasets`` folder)."""
    if any(ch in source for ch in "*?["):
        return True
    path = Path(source)
    if not path.is_dir() or any((path / m).exists() for m in ("dataset_info.json", "state.json", "dataset_dict.json")):
        return False
    return any(p.name.endswith(SHARD_SUFFIXES) for p in path.iterdir())


def list_shards(source: str) -> list[Path]:
    """The shard files of a folder or glob, in name order; DataError when there are none."""
    if any(ch in source for ch in "*?["):
        paths = [Path(p) for p in glob.glob(source)]
    else:
        paths = list(Path(source).iterdir())
    shards = sorted(p for p in paths if p.is_file() and p.name.endswith(SHARD_SUFFIXES))
    if not shards:
        raise DataError(f"no {', '.join(SHARD_SUFFIXES)} shards there", source=source)
    names = [_shard_name(p) for p in shards]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"shards {repeated[0]!r} appear under two suffixes; their outputs would collide",
                        source=source)
    return shards


@dataclass(frozen=True)
class _Shard:
    """One unit of work and of resuming: a shard file, or a slice of rows of a ``datasets`` source."""

    name: str      # its output folder under OUT
    label: str     # what errors name: the file, or "SOURCE rows A-B"
    path: Path | None = None
    rows: tuple[int, int] | None = None

    def digest(self, dataset: Any = None) -> str:
        if self.path is not None:
            return _file_digest(self.path)
        return f"{getattr(dataset, '_fingerprint', 'unknown')}:{self.rows}"

    def read(self, ray: Any, dataset: Any = None) -> Any:
        if self.path is not None:
            if self.path.name.endswith(".parquet"):
                return ray.data.read_parquet(str(self.path))
            return ray.data.read_json(str(self.path), lines=True)
        start, stop = self.rows or (0, 0)
        return ray.data.from_arrow(dataset.select(range(start, stop)).flatten_indices().data.table)


def _dataset_shards(source: str, split: str | None, shard_size: int) -> tuple[Any, list[_Shard]]:
    """A ``datasets`` source (a ``save_to_disk`` folder, a data file, a hub id) cut into slices of rows."""
    import datasets

    path = Path(source)
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
    elif path.is_file():
        kind = "parquet" if path.name.endswith(".parquet") else "json"
        loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
    else:
        loaded = datasets.load_dataset(source, split=split or "train")
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            if len(loaded) != 1:
                raise ConfigError(f"{source} has splits {', '.join(loaded)}: choose one with --split")
            split = next(iter(loaded))
        if split not in loaded:
            raise ConfigError(f"{source} has no split {split!r} (it has {', '.join(loaded)})")
        loaded = loaded[split]
    if shard_size < 1:
        raise ConfigError("shard_size must be at least 1")
    total = len(loaded)
    if total == 0:
        raise DataError("no rows", source=source)
    width = len(str(max(0, (total - 1) // shard_size)))
    shards = [_Shard(f"part-{k:0{max(width, 5)}d}", f"{source} rows {start + 1}-{min(start + shard_size, total)}",
                     rows=(start, min(start + shard_size, total)))
              for k, start in enumerate(range(0, total, shard_size))]
    return loaded, shards


def _shard_name(path: Path) -> str:
    name = path.name
    for suffix in SHARD_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _filesystem(out: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``out`` and the path on it."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(out)
    return fs, str(path).rstrip("/")


# -- on the Ray actors ---------------------------------------------------------------------------

class _InferBatch:
    """``map_batches``' callable class: one per actor, holding the LM and program sent once."""

    def __init__(self, payload: bytes, shard: str, columns: dict[str, str] | None, threads: int,
                 max_attempts: int, skip_invalid: bool, tally: Any) -> None:
        from personae.runs import load_payload

        self.lm, self.program = load_payload(payload)
        self.shard = shard
        self.columns = columns
        self.threads = threads
        self.max_attempts = max_attempts
        self.skip_invalid = skip_invalid
        self.tally = tally

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        from personae.data import load_preferences
        from personae.lm import CostMeter
        from personae.runs import RetryPolicy, ThreadExecutor, run_batch

        rows = table.to_pylist()
        data = load_preferences(rows, columns=self.columns, skip_invalid=True)
        invalid = {s.record: s for s in data.skipped}  # 1-based positions in this batch
        if invalid and not self.skip_invalid:
            number, bad = next(iter(sorted(invalid.items())))
            row = rows[number - 1]
            which = f"record {row['record_id']!r}" if row.get("record_id") else f"row {number} of a batch"
            import ray

            # Ray Data hands the driver its own wrapping of the error: the tally keeps ours.
            ray.get(self.tally.refuse.remote(self.shard, f"{which}: {bad.reason}", bad.field))
            raise DataError(f"{which}: {bad.reason}", source=self.shard, field=bad.field)
        positions = [i for i in range(1, len(rows) + 1) if i not in invalid]
        program = self.program
        meter = CostMeter(entries=False)
        with meter.track():
            outcomes = run_batch(lambda record: program.for_record(record), list(data.records), lm=self.lm,
                                 policy=RetryPolicy(max_attempts=self.max_attempts),
                                 executor=ThreadExecutor(self.threads, name="ray-data"))
        chosen: list[str | None] = [None] * len(rows)
        rejected: list[str | None] = [None] * len(rows)
        errors: list[str | None] = [None] * len(rows)
        kinds: Counter[str] = Counter()
        for number, skipped in invalid.items():
            errors[number - 1] = f"invalid record: {skipped.field or 'row'}: {skipped.reason}"
            kinds["input"] += 1
        for position, outcome in zip(positions, outcomes, strict=True):
            if outcome.value is not None:
                chosen[position - 1] = outcome.value.chosen_persona
                rejected[position - 1] = outcome.value.rejected_persona
            else:
                errors[position - 1] = outcome.error
                kinds[outcome.kind or "lm"] += 1
        self.tally.add.remote(self.shard, meter.cost, dict(kinds))
        for name, values in zip(PERSONA_COLUMNS, (chosen, rejected, errors), strict=True):
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, pa.array(values, type=pa.string()))
        return table


class _Tally:
    """A Ray actor the batches report their cost and failures to, by shard."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.refused: dict[str, tuple[str, str | None]] = {}

    def refuse(self, shard: str, message: str, field: str | None) -> None:
        self.refused.setdefault(shard, (message, field))

    def refusal(self, shard: str) -> tuple[str, str | None] | None:
        return self.refused.pop(shard, None)

    def add(self, shard: str, cost: Cost, kinds: dict[str, int]) -> None:
        entry = self.shards.setdefault(shard, {"cost": Cost(), "kinds": Counter()})
        entry["cost"] += cost
        entry["kinds"].update(kinds)

    def take(self, shard: str) -> dict[str, Any]:
        entry = self.shards.pop(shard, {"cost": Cost(), "kinds": Counter()})
        return {"cost": entry["cost"], "kinds": dict(entry["kinds"])}


# -- the driver -----------------------------------------------------------------------------------

ShardsLog = RunLog[dict[str, Any], dict[str, Any]]
"""The run log of sharded inference (kept in memory: ``OUT`` holds the shards and their manifests)."""


class InferShardsTask(BaseTask[_Shard, dict[str, Any], ShardsLog]):
    """Each shard an item: read with Ray Data, its personas inferred on a pool of actors, written
    whole under ``OUT/<shard name>/``; its ledger row is the shard's manifest (a
    :class:`~personae.runs.ManifestLedger` over ``OUT``). The shards run one after another, each
    with all of the cluster; ``pool`` is the :class:`~personae.runs.RayExecutor` they run on.
    After the run, ``report`` says what happened, shard by shard."""

    name = "infer-shards"

    def __init__(self, source: str, out: str, *, program: PersonaInference | None = None,
                 columns: dict[str, str] | None = None, concurrency: int = 8, max_attempts: int = 3,
                 batch_size: int | None = None, skip_invalid: bool = False, shard_size: int | None = None,
                 split: str | None = None) -> None:
        self.dataset: Any = None
        if shard_size is None:
            self.shards = [_Shard(_shard_name(p), str(p), path=p) for p in list_shards(source)]
        else:
            self.dataset, self.shards = _dataset_shards(source, split, shard_size)
        self.program = (program or PersonaInference()).with_attempts(1)  # the run retries each record
        self.digests = {shard: shard.digest(self.dataset) for shard in self.shards}
        self.state = {"program": program_digest(self.program), "columns": json.dumps(columns or {}, sort_keys=True),
                      **({"shard_size": str(shard_size)} if shard_size is not None else {})}
        self.out, self.columns, self.concurrency = out, columns, concurrency
        self.max_attempts, self.batch_size, self.skip_invalid = max_attempts, batch_size, skip_invalid
        self.fs, self.root = _filesystem(out)
        self.pool: Any = None
        self.new: set[str] = set()  # the shards done by this run
        self.lm: dspy.BaseLM | None = None
        self.report = ShardsReport(out=out)

    def ledger(self, lm: dspy.BaseLM, *, fresh: bool = False) -> ManifestLedger:
        """The shards' manifests under ``OUT``."""
        return ManifestLedger(self.out, kind=self.name, fingerprint=self.fingerprint(lm), fresh=fresh,
                              manifest=MANIFEST, legacy_key=_legacy_key)

    @override
    def opened(self, ledger: Ledger, spec: RunSpec, lm: dspy.BaseLM) -> None:
        self.lm = lm

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> ShardsLog:
        return ShardsLog(command=self.name, config={"out": self.out, **self.state}, versions=package_versions(),
                         results={})

    @override
    def items(self, stage: str, done: Finished) -> Sequence[_Shard]:
        return self.shards

    @override
    def key(self, item: _Shard) -> str:
        return f"{item.name}@{self.digests[item]}"

    @override
    def call(self, item: _Shard) -> dict[str, Any]:
        ray, pool = self.pool.connect(), self.pool  # joins or starts Ray; map_batches' actors are Ray Data's own
        count = pool.worker_count()
        threads = max(1, -(-self.concurrency // count))
        started = time.perf_counter()
        final, tmp = f"{self.root}/{item.name}", f"{self.root}/.{item.name}.{uuid.uuid4().hex[:8]}.tmp"
        tally = ray.remote(num_cpus=0)(_Tally).remote()
        rows_in = item.read(ray, self.dataset).repartition(4 * count)  # one file is one read: split for every actor
        rows_out = rows_in.map_batches(
            _InferBatch, batch_format="pyarrow", batch_size=self.batch_size or 4 * threads, concurrency=count,
            num_cpus=0.5, fn_constructor_kwargs={"payload": worker_payload((self.lm, self.program)),
                                               "shard": item.label, "columns": self.columns, "threads": threads,
                                               "max_attempts": self.max_attempts, "skip_invalid": self.skip_invalid,
                                               "tally": tally})
        try:
            rows_out.write_parquet(tmp, filesystem=_arrow_filesystem(self.fs))
            taken = ray.get(tally.take.remote(item.label))
            if self.fs.exists(final):
                self.fs.rm(final, recursive=True)
            self.fs.mv(tmp, final, recursive=True)
        except Exception:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
            refused = ray.get(tally.refusal.remote(item.label))
            if refused is not None:
                raise DataError(refused[0], source=item.label, field=refused[1]) from None
            raise
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
            raise
        kinds = {k: int(v) for k, v in taken["kinds"].items()}
        cost = replace(taken["cost"], seconds=round(time.perf_counter() - started, 3))
        rows = _count_rows(self.fs, final)
        logger.info("shard %s: %d rows, %d failed, %s", item.name, rows, sum(kinds.values()), cost.summary())
        self.new.add(item.name)
        return {"folder": item.name, "shard": item.label, "source_digest": self.digests[item], "rows": rows,
                "failed": sum(kinds.values()), "failures": kinds, "cost": cost.to_dict()}

    @override
    def row(self, item: _Shard, outcome: Outcome[dict[str, Any]]) -> dict[str, Any]:
        return outcome.value if outcome.value is not None else {"folder": item.name, "shard": item.label}

    @override
    def summary(self, started: ShardsLog, done: Finished) -> ShardsLog:
        rows = [row for row in done.all_rows if row.get("error") is None]
        report = ShardsReport(out=self.out, shards=[_shard_report(row, new=row["folder"] in self.new) for row in rows],
                              failed_shards=[(str(row["folder"]), str(row["error"])) for row in done.all_rows
                                             if row.get("error") is not None])
        failures: Counter[str] = Counter()
        for shard in report.shards:
            failures.update(shard.failures)
            report.cost += shard.cost
        report.counts = Counts(total=sum(s.rows for s in report.shards),
                               succeeded=sum(s.rows - s.failed for s in report.shards if not s.resumed),
                               resumed=sum(s.rows for s in report.shards if s.resumed),
                               failed=sum(s.failed for s in report.shards if not s.resumed),
                               failures=dict(failures.most_common()))
        self.report = report
        return started.model_copy(update={"results": {"rows": report.counts.total}})


def _legacy_key(manifest: Mapping[str, Any]) -> str | None:  # manifests written before they had a key
    folder, digest = manifest.get("folder"), manifest.get("source_digest")
    return f"{folder}@{digest}" if folder and digest else None


def _shard_report(row: Mapping[str, Any], *, new: bool) -> ShardReport:
    """A shard's report from its ledger row (``new``: made by this run; else its manifest, reused)."""
    cost = Cost()
    if new and isinstance(row.get("cost"), dict):
        cost = Cost(**{k: v for k, v in row["cost"].items() if k != "total_tokens"})
    return ShardReport(str(row["folder"]), int(row["rows"]), int(row["failed"]), not new, cost,
                       dict(row.get("failures", {})))


def infer_shards(
    source: str,
    out: str,
    *,
    lm: dspy.BaseLM,
    program: PersonaInference | None = None,
    columns: dict[str, str] | None = None,
    workers: int | None = None,
    concurrency: int = 8,
    max_attempts: int = 3,
    batch_size: int | None = None,
    skip_invalid: bool = False,
    fresh: bool = False,
    address: str | None = None,
    shard_size: int | None = None,
    split: str | None = None,
    on_shard: Callable[[ShardReport], None] | None = None,
) -> ShardsReport:
    """Infer both personas for every row of every shard of ``source`` into ``out``.

    ``source`` is a folder or glob of shard files; with ``shard_size``, it is instead any
    ``datasets`` source (a ``save_to_disk`` folder, a .jsonl/.parquet file, a hub id; ``split``
    picks one split) cut into shards of that many rows, named ``part-00000``, ... in order.

    ``workers`` Ray actors (default: the cluster's CPUs) each run ``concurrency / workers``
    records at once, in batches of ``batch_size`` rows (default four times that). An actor
    waits on the LM most of the time: it asks Ray for half a CPU, which leaves room for Ray
    Data's read and write tasks beside a pool as large as the cluster. ``out`` is
    a folder or an fsspec URL; see the module's notes for what a re-run reuses.
    :class:`InferShardsTask`, run by :func:`personae.runs.run`, one shard at a time.
    """
    task = InferShardsTask(source, out, program=program, columns=columns, concurrency=concurrency,
                           max_attempts=max_attempts, batch_size=batch_size, skip_invalid=skip_invalid,
                           shard_size=shard_size, split=split)
    ledger = task.ledger(lm, fresh=fresh)

    def shard_done(row: dict[str, Any]) -> None:
        if on_shard is not None and row.get("error") is None:
            on_shard(_shard_report(row, new=True))

    with RayExecutor(concurrency, workers=workers, address=address, name="infer-shards") as pool:
        task.pool = pool
        run(task, RunSpec(concurrency=1, max_attempts=1), lm=lm, ledger=ledger, executor=ThreadExecutor(1),
            on_row=shard_done)
    return task.report


def _arrow_filesystem(fs: Any) -> Any:
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(fs))


def _count_rows(fs: Any, folder: str) -> int:
    import pyarrow.parquet as pq

    total = 0
    for path in sorted(fs.find(folder)):
        if path.endswith(".parquet"):
            with fs.open(path, "rb") as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
    return total
