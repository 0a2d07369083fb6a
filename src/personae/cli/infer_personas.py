"""``personae infer-personas``: both personas for every pair of a preference file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_executor_options,
    add_model_options,
    add_program_options,
    build_lm,
    executor,
    inference_program,
    load_data,
    print_counts,
    progress,
)
from personae.cli.options import add_config_options


def register(sub: Any) -> None:
    """Add ``personae infer-personas`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "infer-personas",
        help="infer the chosen-side and rejected-side persona of every pair",
        description="Write the input records with chosen_persona and rejected_persona columns added. "
                    "Results are saved as they come; running the same command again resumes. A folder or "
                    "glob of .parquet/.jsonl shards is read and written through Ray Data (--executor ray): "
                    "one parquet folder per shard under OUT (a folder or fsspec URL), resumable shard by shard.",
    )
    from personae.specs import InferOptions

    add_data_options(parser)
    add_config_options(parser, InferOptions)
    add_program_options(parser)
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Infer both personas of every record and write them to ``--out`` (shard by shard for a folder or
    glob of shards, or with ``--shard-size``); exit status 1 when some record failed, else 0."""
    from personae.pipelines import infer_personas
    from personae.pipelines.shards import is_sharded

    program = inference_program(args)
    if is_sharded(args.data) or args.shard_size is not None:
        return _run_shards(args, program)
    data = load_data(args)
    lm = build_lm(args)
    with executor(args, args.concurrency, "infer-personas") as runner:
        report = infer_personas(data.records, Path(args.out), lm=lm, program=program, executor=runner,
                                max_attempts=args.max_attempts, progress=progress(), fresh=args.fresh,
                                config={"data": args.data, "columns": args.columns, "split": args.split,
                                        "limit": args.limit, "program": args.program, "demos": args.demos})
    print(f"wrote {report.records} records to {report.out} "
          f"({report.inferred} inferred now, {report.resumed} from an earlier run, {report.failed} failed)")
    print_counts(report.counts, "records")
    for record_id, reason in report.failures[:5]:
        print(f"  failed {record_id}: {reason}")
    print(f"cost: {report.cost.summary()}")
    return 1 if report.failed else 0


def _run_shards(args: argparse.Namespace, program: Any) -> int:
    import sys

    from personae.cli._common import parse_columns, share_key_with_workers
    from personae.errors import ConfigError
    from personae.pipelines.shards import infer_shards

    if args.executor != "ray":
        what = "--shard-size" if args.shard_size is not None else f"{args.data} is a folder of shards: it"
        raise ConfigError(f"{what} reads through Ray Data, with --executor ray (which starts a local Ray unless "
                          "--ray-address names a cluster)")
    if args.limit is not None or (args.split is not None and args.shard_size is None):
        raise ConfigError("--limit (and --split, but with --shard-size) do not apply to a folder of shards")
    lm = build_lm(args)
    share_key_with_workers(args)

    def show(shard: Any) -> None:
        print(f"{shard.shard}: {shard.rows} rows, {shard.failed} failed, {shard.cost.summary()}", file=sys.stderr,
              flush=True)

    report = infer_shards(args.data, args.out, lm=lm, program=program, columns=parse_columns(args.columns),
                          workers=args.workers, concurrency=args.concurrency, max_attempts=args.max_attempts,
                          batch_size=args.batch_size, skip_invalid=args.skip_invalid, fresh=args.fresh,
                          address=args.ray_address, shard_size=args.shard_size, split=args.split, on_shard=show)
    resumed = sum(1 for s in report.shards if s.resumed)
    print(f"wrote {len(report.shards)} shards ({report.counts.total} records) to {report.out} "
          f"({len(report.shards) - resumed} inferred now, {resumed} from an earlier run)")
    print_counts(report.counts, "records")
    for shard, reason in report.failed_shards:
        print(f"  failed shard {shard} (done again by the next run): {reason}")
    print(f"cost: {report.cost.summary()}")
    return 1 if report.counts.failed or report.failed_shards else 0
