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


def register(sub: Any) -> None:
    """Add ``personae judge`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "judge",
        help="predict which response each user chose, optionally guided by a persona or profile",
        description="Judge every pair in both orders and report accuracy; unparseable or failed "
                    "judgments count as wrong and are listed as unscored.",
    )
    add_data_options(parser)
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--persona", help="a persona text used for every pair")
    who.add_argument("--persona-column", help="a column holding each record's persona (e.g. chosen_persona)")
    who.add_argument("--profile", action="store_true", help="use each record's user profile (demographics)")
    parser.add_argument("--one-order", action="store_true", help="judge only with the chosen response first")
    parser.add_argument("--out", help="write every judgment to this .jsonl file, with its run log in OUT.run.json; "
                                      "judgments are kept in OUT.progress.jsonl as they are made, and the same "
                                      "command resumes from there")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the judgments an earlier run left in OUT.progress.jsonl")
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
