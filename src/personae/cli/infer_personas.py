"""``personae infer-personas``: both personas for every pair of a preference file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from personae.cli._common import Progress, add_data_options, add_model_options, build_lm, load_data


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "infer-personas",
        help="infer the chosen-side and rejected-side persona of every pair",
        description="Write the input records with chosen_persona and rejected_persona columns added. "
                    "Results are saved as they come; running the same command again resumes.",
    )
    add_data_options(parser)
    parser.add_argument("--out", required=True, help="output file: .jsonl, .json, .csv or .parquet")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from personae.pipelines import infer_personas

    data = load_data(args)
    lm = build_lm(args)
    report = infer_personas(data.records, Path(args.out), lm=lm, concurrency=args.concurrency,
                            max_attempts=args.max_attempts, on_progress=Progress("infer-personas"))
    print(f"wrote {report.records} records to {report.out} "
          f"({report.inferred} inferred now, {report.resumed} from an earlier run, {report.failed} failed)")
    for record_id, reason in report.failures[:5]:
        print(f"  failed {record_id}: {reason}")
    print(f"cost: {report.cost.summary()}")
    return 1 if report.failed else 0
