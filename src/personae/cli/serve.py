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
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    parser.add_argument("--gguf", default=None, help="another GGUF model file to serve")
    parser.add_argument("--n-ctx", type=int, default=8192, help="context window in tokens (default 8192)")
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
