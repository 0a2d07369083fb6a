"""``personae serve``: the embedded model as an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import argparse
import time
from typing import Any


def register(sub: Any) -> None:
    """Add ``personae serve`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "serve",
        help="serve the embedded model over HTTP (OpenAI-compatible) on 127.0.0.1",
        description="Run the embedded SmolLM2 model (or another GGUF file) behind an OpenAI-compatible "
                    "HTTP endpoint on 127.0.0.1, so any command can reach it through LiteLLM with "
                    "--model openai/<name> --api-base <printed URL>. Stop with Ctrl-C.",
    )
    from personae.cli.options import add_config_options
    from personae.specs import ServeOptions

    add_config_options(parser, ServeOptions)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve the embedded model (or ``--gguf``) on 127.0.0.1 and print its URL; runs until the process
    is stopped."""
    from personae.lm import LlamaCppEngine

    engine = LlamaCppEngine(args.gguf, n_ctx=args.n_ctx, port=args.port)
    url = engine.url
    print(f"serving on {url}\ntry: personae demo --model openai/smollm2 --api-base {url}", flush=True)
    while True:  # the server runs on llama.cpp's own threads until the process is stopped
        time.sleep(3600)
