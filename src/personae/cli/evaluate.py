"""``personae evaluate``: compare judging methods on the same held-out pairs of each user.

Writes ``OUT/run.json`` (every judgment, with prompts and raw outputs), ``OUT/report.md`` and
two plots, and prints the summary table and the cost. Judgments are appended to the ledger
``OUT/judgments.jsonl`` as they are made; running the same command again reuses the scored
ones and judges only what is missing (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_executor_options,
    add_model_options,
    digest,
    load_data,
    print_counts,
    progress,
    run_spec,
)
from personae.cli.options import add_config_options


def register(sub: Any) -> None:
    """Add ``personae evaluate`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "evaluate",
        help="compare judges (default, profile, memory, persona, synthesizeme) on each user's test pairs",
        description="Split each user's pairs by prompt (train/val/test), judge every test pair in both "
                    "orders with every method, and report pooled accuracy with a 95 percent bootstrap interval, "
                    "per-user accuracy and LM cost. Unscored judgments count as wrong.",
    )
    from personae.specs import EvaluateOptions

    add_data_options(parser)
    add_config_options(parser, EvaluateOptions)
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the ``--method`` judges on each user's test pairs, write ``run.json`` and the report
    into ``--out`` and print the summary; exit status 1 when some judgments failed, else 0."""
    from personae.data import parse_fractions, select_users
    from personae.evaluation import read_personas, summary_table, write_report
    from personae.pipelines import EvaluateTask, EvaluationRun
    from personae.runs import RUN_FILE, run

    fractions = parse_fractions(args.fractions)
    personas = read_personas(args.personas) if args.personas else None
    data = load_data(args)
    users = {u.user_id: u for u in select_users(data, top=args.users, min_pairs=args.min_pairs)}
    spec = run_spec(args)
    # What each judge knows (persona, profile, history, a fitted judge's demos) is part of each
    # judgment's key: a judge that changed is asked again, the others' judgments are reused.
    state = {"data": args.data, "columns": args.columns, "split": args.split, "fractions": list(fractions)}
    task = EvaluateTask(users, args.method.split(","), fractions=fractions, judges_dir=args.judges,
                        personas=personas, source=args.data, state=state,
                        extra={**state, "judges": args.judges, "personas": args.personas,
                               "judges_digest": digest(args.judges), "personas_digest": digest(args.personas),
                               "users": args.users, "min_pairs": args.min_pairs})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    evaluation = EvaluationRun(run(task, spec, progress=progress()))
    report = write_report(evaluation, out)
    n_test = sum(u.n_test for u in evaluation.users)
    print(f"evaluated {len(users)} users, {n_test} test pairs, both orders, methods: {', '.join(task.stages)}")
    print(summary_table(evaluation, markdown=False))
    for summary in evaluation.log.results.summary:
        if summary.unscored_reasons:
            reasons = ", ".join(f"{n} {reason}" for reason, n in summary.unscored_reasons.items())
            print(f"{summary.method}: unscored (counted wrong): {reasons}")
    print_counts(evaluation.log.counts, "judgments")
    print(f"cost: {evaluation.cost.summary()}")
    print(f"wrote {out / RUN_FILE} and {report}")
    return 1 if evaluation.log.counts.failed else 0
