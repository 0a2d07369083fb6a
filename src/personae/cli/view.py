"""``personae view PATH``: a run's log or output folder as pages in the browser, on loopback."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add ``personae view`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "view", help="see a run in the browser: spec, cost, accuracy per method and user, every judgment",
        description="Serve a run log or the output folder of evaluate, eval-personas, eval-tailoring, judge or fit "
                    "as pages on 127.0.0.1: the run's spec, status, cost and counts, accuracy per method with its "
                    "interval and per user, the plots, and every judgment with the prompt, both responses, the "
                    "persona and the judge's reasoning, filtered by user, method and outcome. Reads the logs and "
                    "ledgers of earlier versions. Needs the service extra: pip install 'personae[service]'.")
    from personae.cli.options import add_config_options
    from personae.specs import ViewOptions

    add_config_options(parser, ViewOptions)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the run, print what it holds and serve it until interrupted; exit status 0."""
    from personae.service import run_app
    from personae.web.viewer import load_run, viewer_app

    view = load_run(args.path)
    print(f"{view.command} ({view.status}): {len(view.judgments)} judgments, "
          f"{len(view.groups)} methods, {len(view.users)} users", file=sys.stderr)
    for note in view.notes:
        print(f"note: {note}", file=sys.stderr)

    def ready(url: str) -> None:
        print(f"viewing {args.path} on {url}/ (Ctrl-C stops)", flush=True)

    run_app(viewer_app(view), port=args.port, ready=ready)
    return 0
