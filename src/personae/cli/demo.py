"""``personae demo``: the whole method on a small packaged data set, offline by default."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from typing import Any

from personae.cli._common import add_model_options, build_lm


def register(sub: Any) -> None:
    """Add ``personae demo`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "demo",
        help="infer and test personas for the users of a small packaged data set",
        description="For each user: infer personas of earlier pairs, synthesize the user's persona from "
                    "verified reasoning on the earlier pairs, and judge the later pairs with and without it.",
    )
    from personae.cli.options import add_config_options
    from personae.specs import DemoOptions

    add_config_options(parser, DemoOptions)
    add_model_options(parser, max_attempts=2)
    parser.set_defaults(run=run)


def _pct(report: Any) -> str:
    return f"{report.accuracy:.0%} ({report.correct}/{report.total})"


def run(args: argparse.Namespace) -> int:
    """Run the demo on the packaged data set (or ``--data``) and print, per user, the persona and the
    test accuracy without and with it, the cost, and the personas inferred; returns exit status 0."""
    from datetime import datetime, timezone
    from pathlib import Path

    from personae.data import load_preferences
    from personae.lm import is_local
    from personae.pipelines import demo_data_path, demo_run_log, demo_store, run_demo
    from personae.runs import write_log

    data = load_preferences(args.data) if args.data else None
    lm = build_lm(args)
    if is_local(args.model):
        print("Running on the embedded SmolLM2-135M model (offline). A model this small judges at about "
              "chance level:\nthe run shows the pipeline working, not what personas are worth. "
              "Use --model with a real LLM for that.\n")
    start = time.perf_counter()
    started = datetime.now(timezone.utc)

    def show(user: Any) -> None:
        print(f"[{user.user_id}] persona from {user.verified}/{user.n_train} verified traces, "
              f"tested on {user.n_test} later pairs ({user.cost.seconds:.0f} s)", file=sys.stderr)

    users = run_demo(data, lm=lm, users=args.users, train_fraction=args.train_fraction,
                     max_attempts=args.max_attempts, on_user=show)
    width = 48
    header = (f"{'user':<8} {'persona':<{width}} {'no persona':>13} {'with persona':>13} "
              f"{'calls':>6} {'tokens':>8} {'seconds':>8}")
    print(header)
    print("-" * len(header))
    for user in users:
        lines = textwrap.wrap(user.persona or "(none: no verified traces)", width) or [""]
        if len(lines) > 3:
            lines = lines[:3]
            lines[-1] = lines[-1][: width - 3] + "..."
        print(f"{user.user_id:<8} {lines[0]:<{width}} {_pct(user.without_persona):>13} {_pct(user.with_persona):>13} "
              f"{user.cost.lm_calls:>6} {user.cost.total_tokens:>8} {user.cost.seconds:>8.1f}")
        for line in lines[1:]:
            print(f"{'':<8} {line}")
    plain = sum(u.without_persona.correct for u in users), sum(u.without_persona.total for u in users)
    guided = sum(u.with_persona.correct for u in users), sum(u.with_persona.total for u in users)
    calls = sum(u.cost.lm_calls for u in users)
    tokens = sum(u.cost.total_tokens for u in users)
    print("-" * len(header))
    print(f"{'all':<8} {'':<{width}} {plain[0] / max(plain[1], 1):>13.0%} {guided[0] / max(guided[1], 1):>13.0%} "
          f"{calls:>6} {tokens:>8} {time.perf_counter() - start:>8.1f}")
    unscored = sum(u.without_persona.unscored + u.with_persona.unscored for u in users)
    print(f"\nEach later pair is judged twice (both orders); {unscored} judgments were unscored and count as wrong.")
    examples = [(u.user_id, e) for u in users for e in u.inferred if "chosen_persona" in e]
    if examples:
        print("\nPersona inference on one earlier pair per user (who would choose each side):")
        for user_id, e in examples:
            print(f"  {user_id}  chosen:   {textwrap.shorten(e['chosen_persona'] or '', 160)}")
            print(f"  {'':<{len(user_id)}}  rejected: {textwrap.shorten(e['rejected_persona'] or '', 160)}")
    out = Path(args.out)
    log = write_log(demo_run_log(users, model=args.model, train_fraction=args.train_fraction,
                                 data_source=str(args.data or demo_data_path()), started=started), out / "run.json")
    print(f"\nThe run's log: {log} (see it with: personae view {out})")
    if args.store:
        print("Keeping the users in a persona store: each persona as the first version, fitted on the earlier "
              "pairs; the later pairs judged by it before the store learns from them:", file=sys.stderr)

        def stored(user_id: str, state: Any) -> None:
            accuracy = "-" if state.prequential_accuracy is None else f"{state.prequential_accuracy:.0%}"
            print(f"[{user_id}] store: persona version {state.version} ({state.method}), prequential accuracy "
                  f"{accuracy} over {state.prequential_judged} pairs", file=sys.stderr)

        path = demo_store(users, out / "store.db", lm=lm, on_user=stored)
        print(f"The persona store: {path} (see it with: personae store console --store {path})")
    return 0
