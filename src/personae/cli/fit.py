"""``personae fit``: a SynthesizeMe judge for every user of a preference file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_executor_options,
    add_model_options,
    build_lm,
    executor,
    load_data,
    print_counts,
    progress,
)
from personae.cli.options import add_config_options


def register(sub: Any) -> None:
    """Add ``personae fit`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "fit",
        help="fit a personalized judge (persona + demonstrations) for every user",
        description="Fit SynthesizeMe judges, one JSON file per user in --out. Finished users are "
                    "written as they complete (with a row in OUT/progress.jsonl); running the same command again "
                    "skips them. A user whose fit fails is recorded there with the reason, the others go on, "
                    "and the next run tries it again.",
    )
    from personae.specs import FitOptions

    add_data_options(parser)
    add_config_options(parser, FitOptions)
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fit a judge for every selected user not yet fitted in ``--out`` and print how it went; exit
    status 1 when some user failed, else 0."""
    from personae.data import select_users
    from personae.optimizers import SynthesizeMe, preset_overrides
    from personae.pipelines import fit_users
    from personae.programs import PersonaSynthesis

    data = load_data(args)
    users = select_users(data, top=args.users, min_pairs=args.min_pairs)
    lm = build_lm(args)
    synthesis = None
    if args.persona_program:
        synthesis = PersonaSynthesis()
        synthesis.load(args.persona_program)
    fitter = SynthesizeMe(args.preset, seed=args.seed, num_threads=args.concurrency,
                          max_lm_calls=args.max_lm_calls, synthesis=synthesis, **preset_overrides(args.settings))
    from personae.optimizers import judge_path

    already = 0 if args.fresh else sum(judge_path(args.out, u.user_id).exists() for u in users)
    print(f"{len(users)} users; {already} already fitted in {args.out}, {len(users) - already} to fit",
          file=sys.stderr, flush=True)

    def show(user_id: str, status: str, judge: Any) -> None:
        detail = ""
        if judge is not None:
            acc = "n/a (no validation side)" if judge.val_accuracy is None else f"{judge.val_accuracy:.0%}"
            detail = (f" val {acc}, {len(judge.demos)} demos, {judge.cost['lm_calls']} calls, "
                      f"{judge.cost['seconds']:.0f} s")
        print(f"{user_id}: {status}{detail}", file=sys.stderr, flush=True)

    with executor(args, args.user_concurrency, "fit") as runner:
        report = fit_users(users, args.out, lm=lm, fitter=fitter, executor=runner, on_done=show, fresh=args.fresh,
                           progress=progress())
    unvalidated = sum(1 for judge in report.fitted if judge.val_accuracy is None)
    without = f" ({unvalidated} without a validation side: too few prompts)" if unvalidated else ""
    print(f"{len(report.fitted)} fitted{without}, {len(report.skipped)} already done, {len(report.failed)} failed "
          f"-> {args.out}")
    for user_id, reason in report.failed:
        print(f"  failed {user_id}: {reason}")
    print_counts(report.counts, "users")
    print(f"cost: {report.cost.summary()}")
    return 1 if report.failed else 0
