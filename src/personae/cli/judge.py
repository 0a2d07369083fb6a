"""``personae judge``: judge pairs with the default, persona, profile or memory judge."""

from __future__ import annotations

import argparse
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_executor_options,
    add_model_options,
    build_lm,
    load_data,
    print_counts,
    progress,
    run_spec,
)
from personae.cli.options import add_config_options


def register(sub: Any) -> None:
    """Add ``personae judge`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "judge",
        help="predict which response each user chose, optionally guided by a persona or profile",
        description="Judge every pair in both orders and report accuracy; unparseable or failed "
                    "judgments count as wrong and are listed as unscored.",
    )
    from personae.specs import JudgeOptions

    add_data_options(parser)
    add_config_options(parser, JudgeOptions)
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def _method(args: argparse.Namespace) -> str:
    if args.persona:
        return "persona"
    if args.persona_column:
        return f"persona:{args.persona_column}"
    return "profile" if args.profile else "default"


def run(args: argparse.Namespace) -> int:
    """Judge every pair (in both orders unless ``--one-order``), write the judgments to ``--out`` when
    given and print the accuracy; exit status 1 when some judgments failed, else 0."""
    from personae.data import write_rows
    from personae.pipelines import JudgeReport, JudgeTask, judge_factory
    from personae.runs import lm_fingerprint, run

    data = load_data(args)
    lm = build_lm(args)
    spec = run_spec(args)
    method = _method(args)
    config = {"data": args.data, "columns": args.columns, "split": args.split, "method": method,
              "persona": args.persona, "persona_column": args.persona_column, "profile": args.profile,
              "both_orders": not args.one_order, **lm_fingerprint(lm)}
    factory = judge_factory(persona=args.persona, column=args.persona_column, profile=args.profile, source=args.data)
    task = JudgeTask(data.records, factory, both_orders=not args.one_order, method=method, config=config)
    log = run(task, spec, lm=lm, progress=progress())
    report = JudgeReport(task.rows, log.cost, log.counts)
    if args.out:
        write_rows([j.model_dump(mode="json") for j in report.judgments], args.out)
    print(f"judged {len(data)} pairs, {report.total} judgments: accuracy {report.accuracy:.1%} "
          f"({report.correct} correct, {report.unscored} unscored and counted wrong)")
    print_counts(report.counts, "judgments")
    print(f"cost: {report.cost.summary()}")
    return 1 if report.counts.failed else 0
