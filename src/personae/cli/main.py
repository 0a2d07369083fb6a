"""The ``personae`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from personae import __version__
from personae.cli import (
    demo,
    distill,
    eval_personas,
    eval_tailoring,
    evaluate,
    fit,
    infer_personas,
    judge,
    mcp,
    optimize_persona,
    optimize_persona_inference,
    retrieve,
    saliency,
    serve,
    serve_api,
    store,
    view,
)
from personae.cli._common import prepare_environment

__all__ = ["build_parser", "main"]

_COMMANDS = (infer_personas, judge, fit, evaluate, eval_personas, optimize_persona, optimize_persona_inference,
             retrieve, saliency, distill, eval_tailoring, demo, serve, serve_api, mcp, store, view)


def build_parser() -> argparse.ArgumentParser:
    """The ``personae`` argument parser, with every command's subparser."""
    parser = argparse.ArgumentParser(
        prog="personae",
        description="Infer who prefers what: personas from pairwise preferences, persona-guided judges.",
    )
    parser.add_argument("--version", action="version", version=f"personae {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; exit status 0 when everything succeeded, 1 when some items failed (or an
    LM kept failing), 2 for bad input or configuration (one line, no traceback), 130 when
    interrupted. A programming error is not caught: its traceback is the bug report."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:
        for noisy in ("LiteLLM", "litellm", "httpx", "dspy"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        # LiteLLM's response types make pydantic warn once per process; nothing a user can act on
        warnings.filterwarnings("ignore", message=r"Item '\w+' on TypedDict class .* `ReadOnly` qualifier",
                                category=UserWarning)
    prepare_environment(args)
    from personae.cli.options import flags_named
    from personae.errors import ConfigError, LMCallError, PersonaeError

    try:
        return int(args.run(args) or 0)
    except LMCallError as exc:  # an item that had to succeed kept failing at the LM
        print(f"personae: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # settings: name the options too
        print(f"personae: error: {flags_named(_one_line(exc), args)}", file=sys.stderr)
        return 2
    except PersonaeError as exc:  # bad input
        print(f"personae: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\npersonae: interrupted; finished results are kept, run the same command to resume",
              file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The error as one line (a message with newlines would read as several errors)."""
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
