"""``personae mcp``: the persona store as an MCP server on stdio, for desktop agents and IDEs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from personae.cli._common import add_model_options, build_lm
from personae.cli.options import add_config_options, config_from_args
from personae.specs import McpOptions

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``personae mcp`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "mcp",
        help="serve the persona store to an MCP client on stdio (desktop agents, IDEs)",
        description="Speak the Model Context Protocol on stdin and stdout: tools to record a user's choice between "
                    "two drafts, read their persona, judge or rank drafts for them, get a system prompt to write "
                    "for them, read their persona's history and forget them; a resource per user's persona and a "
                    "prompt that writes for a user. One tenant's users (--tenant). The same tools are served at "
                    "/mcp by 'personae serve-api'. Needs the service extra: pip install 'personae[service]'.",
    )
    add_config_options(parser, McpOptions, defaults={"store": os.environ.get("PERSONAE_STORE", "personae.db")},
                       shown={"store": "$PERSONAE_STORE or personae.db"})
    add_model_options(parser, default_model=None,
                      default_model_help="the judge's own LM, or 'local' with a reward-model judge")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until the client closes stdin; returns 0."""
    from personae.service import create_mcp, open_store
    from personae.service.mcp import Caller

    options = config_from_args(McpOptions, args)

    def lm_for(model: str) -> Any:
        return build_lm(argparse.Namespace(**{**vars(args), "model": model}))

    with open_store(options.store, options.judge, lm_for, writer=args.model, logprobs=options.logprobs,
                    device=options.device, debounce=options.debounce, runtime=options.runtime) as store:
        view = store.for_tenant(options.tenant)
        caller = Caller(view, actor="mcp (stdio)")   # the operator's own process: every scope; audited as such
        server = create_mcp(lambda: view, secrets=tuple(s for s in (args.api_key,) if s), caller_for=lambda: caller)
        print(f"personae mcp: {store.database}, tenant {options.tenant!r}, on stdio", file=sys.stderr, flush=True)
        server.run("stdio")
    return 0
