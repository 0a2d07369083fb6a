"""``personae eval-tailoring``: compare two generators' responses to persona test prompts.

A judge LM compares generator A with generator B on every test prompt, for personalization
and for quality, each in both orders (a tie when the orders disagree), and reports both win
rates of A and DeltaPQ. Writes ``OUT/run.json`` (the run log, every judgment with its prompt and
raw output), ``OUT/judgments.jsonl`` (the ledger: the same command resumes, ``--fresh`` starts
over) and ``OUT/generations_a.jsonl`` / ``_b.jsonl`` for sides generated on the spot.
"""

from __future__ import annotations

import argparse
from typing import Any

from personae.cli._common import (
    add_model_options,
    build_lm,
    print_counts,
    progress,
)
from personae.cli.options import add_config_options, config_from_args, quiet_libraries


def register(sub: Any) -> None:
    """Add ``personae eval-tailoring`` and its options to ``sub``, the main parser's subcommands."""
    from personae.pipelines.eval_tailoring import TailoringEvalConfig

    parser = sub.add_parser(
        "eval-tailoring",
        help="judge two generators on persona test prompts: personalization and quality win rates, DeltaPQ",
        description="Compare generator A against generator B with an LLM judge, for personalization and for "
                    "quality, in both orders (a tie when the orders disagree). A side is a .jsonl of generations, "
                    "column:NAME of the test data, or model:PATH to generate now (needs personae[distill]).",
    )
    add_config_options(parser, TailoringEvalConfig)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compare generators A and B on the test prompts and print each criterion's wins, ties and losses
    and DeltaPQ; exit status 1 when some judgments failed, else 0."""
    from personae.pipelines.eval_tailoring import RUN_FILE, TailoringEvalConfig, eval_tailoring

    config = config_from_args(TailoringEvalConfig, args)
    if any(side.startswith("model:") for side in (config.a, config.b)):
        from personae.distill import require_distill

        require_distill("generating with model:PATH", ("torch", "transformers"))
        quiet_libraries(getattr(args, "verbose", 0))
    lm = build_lm(args)
    log = eval_tailoring(config, lm, concurrency=args.concurrency, max_attempts=args.max_attempts,
                         progress=progress())
    for s in log.results.summary:
        rate = "n/a" if s.win_rate is None else f"{s.win_rate:.1%}"
        print(f"{s.criterion}: A wins {s.wins}, ties {s.ties} ({s.unscored} unscored), B wins {s.losses} "
              f"of {s.items}: win rate of A {rate}")
    if log.results.delta_pq is not None:
        print(f"DeltaPQ {log.results.delta_pq:+.3f}")
    print_counts(log.counts, "judgments")
    print(f"cost: {log.cost.lm_calls} LM calls, {log.cost.total_tokens:,} tokens, {log.cost.seconds:.1f} s; "
          f"log: {config.out}/{RUN_FILE}")
    return 1 if log.counts.failed else 0
