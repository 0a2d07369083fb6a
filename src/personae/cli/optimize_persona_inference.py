"""``personae optimize-persona-inference``: compile persona inference against persona accuracy."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_judge_model_options,
    add_model_options,
    build_lm,
    load_data,
    print_counts,
)
from personae.cli.options import add_config_options


def register(sub: Any) -> None:
    """Add ``personae optimize-persona-inference`` and its options to ``sub``, the main parser's
    subcommands."""
    parser = sub.add_parser(
        "optimize-persona-inference",
        help="compile the persona-inference program (bootstrapped demos or MIPROv2) for persona accuracy",
        description="The metric is persona accuracy: a judge given an inferred persona must pick the response "
                    "it was inferred from (both sides; both orders unless --one-order). The first half of the "
                    "records trains, the rest validates (or --val-limit). The result is never worse than the "
                    "starting program on the validation records. Saved as DSPy JSON; use it with "
                    "`personae infer-personas --program` or `personae eval-personas --program`.",
    )
    from personae.specs import OptimizeInferenceOptions

    add_data_options(parser)
    add_config_options(parser, OptimizeInferenceOptions)
    add_judge_model_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compile the persona-inference program for persona accuracy and save it to ``--out`` (a .json
    file); returns exit status 0."""
    from pathlib import Path

    from personae.cli._common import judge_lm_from_args
    from personae.data import read_persona_demos
    from personae.errors import ConfigError
    from personae.lm import CostMeter
    from personae.optimizers import optimize_persona_inference
    from personae.programs import PersonaInference
    from personae.runs import Tally

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise ConfigError(f"--out must be a .json file, got {out}")
    student = PersonaInference(demos=read_persona_demos(args.demos)) if args.demos else None
    data = load_data(args)
    lm = build_lm(args)
    judge_lm = judge_lm_from_args(args)
    meter = CostMeter()
    tally = Tally()
    with meter.track(), contextlib.redirect_stdout(sys.stderr):  # DSPy's optimizers print their progress
        program = optimize_persona_inference(
            data.records, lm=lm, judge_lm=judge_lm, optimizer=args.optimizer, student=student,
            both_orders=not args.one_order, max_demos=args.max_demos, num_candidates=args.candidates,
            auto=args.auto, num_threads=args.concurrency, seed=args.seed, tally=tally)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(out))
    print(f"optimized persona inference over {len(data)} records with {args.optimizer} "
          f"({len(program.infer.demos)} demos); saved to {out}")
    print_counts(tally.counts, "metric judgments")
    print(f"cost: {meter.cost.summary()}")
    return 0
