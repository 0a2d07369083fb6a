"""``personae optimize-persona-prompt``: compile persona synthesis across users."""

from __future__ import annotations

import argparse
from typing import Any

from personae.cli._common import add_data_options, add_model_options, build_lm, load_data, print_counts, progress
from personae.cli.options import add_config_options


def register(sub: Any) -> None:
    """Add ``personae optimize-persona-prompt`` and its options to ``sub``, the main parser's
    subcommands."""
    parser = sub.add_parser(
        "optimize-persona-prompt",
        help="optimize the persona-synthesis program over many users (MIPROv2 or GEPA)",
        description="Verified reasoning on each user's train pairs gives the program's inputs; the metric is "
                    "the validation accuracy of a judge guided by the synthesized persona. The compiled "
                    "program is saved as JSON; use it with `personae fit --persona-program`.",
    )
    from personae.specs import OptimizePersonaOptions

    add_data_options(parser)
    add_config_options(parser, OptimizePersonaOptions)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Verify reasoning on each selected user's pairs, optimize the persona-synthesis program on it and
    save the program to ``--out``; returns exit status 0."""
    from pathlib import Path

    from personae.data import select_users
    from personae.lm import CostMeter
    from personae.optimizers import SynthesisExamplesTask, optimize_persona_program
    from personae.runs import RunSpec, run

    data = load_data(args)
    users = select_users(data, top=args.users, min_pairs=args.min_pairs)
    lm = build_lm(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    task = SynthesisExamplesTask(users, seed=args.seed, verify_attempts=args.max_attempts)
    meter = CostMeter()
    with meter.track():
        verified = run(task, RunSpec(max_attempts=1, out=str(out), fresh=args.fresh), lm=lm, progress=progress())
        examples = task.examples
        program = optimize_persona_program(examples, lm=lm, optimizer=args.optimizer, auto=args.auto,
                                           num_threads=args.concurrency, seed=args.seed)
    program.save(str(out))
    print(f"optimized over {len(examples)} users with {args.optimizer}; saved to {out}")
    print_counts(verified.counts, "users verified")
    print(f"cost: {meter.cost.summary()}")
    return 0
