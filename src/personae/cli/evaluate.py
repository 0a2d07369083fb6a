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
    build_lm,
    digest,
    executor,
    load_data,
    print_counts,
    progress,
)

RUN_FILE = "run.json"


def register(sub: Any) -> None:
    """Add ``personae evaluate`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "evaluate",
        help="compare judges (default, profile, memory, persona, synthesizeme) on each user's test pairs",
        description="Split each user's pairs by prompt (train/val/test), judge every test pair in both "
                    "orders with every method, and report pooled accuracy with a 95 percent bootstrap interval, "
                    "per-user accuracy and LM cost. Unscored judgments count as wrong.",
    )
    add_data_options(parser)
    parser.add_argument("--method", default="default",
                        help="comma-separated methods: default, profile, memory, persona, synthesizeme "
                             "(default: default)")
    parser.add_argument("--judges", help="folder of fitted judges (personae fit), needed by synthesizeme")
    parser.add_argument("--personas", help="jsonl file of {user_id, persona} rows for the persona method "
                                           "(default: the records' 'persona' column)")
    parser.add_argument("--users", type=int, default=None, help="evaluate only the N users with the most pairs")
    parser.add_argument("--min-pairs", type=int, default=0, help="skip users with fewer than K pairs")
    parser.add_argument("--fractions", default="0.5,0.2,0.3",
                        help="train,val,test shares of each user's prompts (default 0.5,0.2,0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (default 0)")
    parser.add_argument("--out", required=True, help="output folder for run.json, report.md and plots")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore judgments left in OUT by an earlier run instead of reusing them")
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the ``--method`` judges on each user's test pairs, write ``run.json`` and the report
    into ``--out`` and print the summary; exit status 1 when some judgments failed, else 0."""
    from personae.data import parse_fractions, select_users
    from personae.evaluation import evaluate_methods, read_personas, summary_table, write_report
    from personae.evaluation.methods import check_methods
    from personae.runs import JUDGMENTS_FILE, Ledger, lm_fingerprint

    methods = check_methods(args.method.split(","), judges_dir=args.judges)
    fractions = parse_fractions(args.fractions)
    personas = read_personas(args.personas) if args.personas else None
    data = load_data(args)
    users = {u.user_id: u for u in select_users(data, top=args.users, min_pairs=args.min_pairs)}
    lm = build_lm(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # What each judge knows (persona, profile, history, a fitted judge's demos) is part of each
    # judgment's key: a judge that changed is asked again, the others' judgments are reused.
    state = {**lm_fingerprint(lm), "data": args.data, "columns": args.columns, "split": args.split,
             "fractions": list(fractions)}
    ledger = Ledger(out / JUDGMENTS_FILE, kind="evaluate", fingerprint=state, fresh=args.fresh)
    with executor(args, args.concurrency, "evaluate") as runner:
        evaluation = evaluate_methods(
            users, methods, lm=lm, fractions=fractions, judges_dir=args.judges, personas=personas,
            executor=runner, max_attempts=args.max_attempts, seed=args.seed, ledger=ledger,
            source=args.data, extra={**state, "judges": args.judges, "personas": args.personas,
                                     "judges_digest": digest(args.judges), "personas_digest": digest(args.personas),
                                     "users": args.users, "min_pairs": args.min_pairs},
            progress=progress(), log_path=out / RUN_FILE,
        )
    report = write_report(evaluation, out)
    n_test = sum(u.n_test for u in evaluation.users)
    print(f"evaluated {len(users)} users, {n_test} test pairs, both orders, methods: {', '.join(methods)}")
    print(summary_table(evaluation, markdown=False))
    for summary in evaluation.log.results.summary:
        if summary.unscored_reasons:
            reasons = ", ".join(f"{n} {reason}" for reason, n in summary.unscored_reasons.items())
            print(f"{summary.method}: unscored (counted wrong): {reasons}")
    print_counts(evaluation.log.counts, "judgments")
    print(f"cost: {evaluation.cost.summary()}")
    print(f"wrote {out / RUN_FILE} and {report}")
    return 1 if evaluation.log.counts.failed else 0
