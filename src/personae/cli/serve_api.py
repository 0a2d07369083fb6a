"""``personae serve-api``: the persona store over HTTP; ``personae serve-api tokens``: its tokens."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from personae.cli._common import add_model_options, build_lm, register_tokens
from personae.cli.options import add_config_options, config_from_args
from personae.specs import ServeApiOptions

__all__ = ["register"]

_DEFAULT_STORE = "personae.db"


_STORE_SHOWN = {"store": "$PERSONAE_STORE or personae.db; prefer the variable for a URL with a password"}


def _store_default() -> dict[str, str]:
    return {"store": os.environ.get("PERSONAE_STORE", _DEFAULT_STORE)}


def register(sub: Any) -> None:
    """Add ``personae serve-api`` and its options to ``sub``, the main parser's subcommands (with
    ``serve-api tokens`` and its verbs ``create``, ``list`` and ``revoke``)."""
    parser = sub.add_parser(
        "serve-api",
        help="serve the persona store over HTTP (personas, judging, ranking) with bearer tokens",
        description="Serve a persona store over HTTP on uvicorn: /v1 routes to add preferences, read personas, "
                    "judge and rank for a user; /healthz, /readyz, /metrics; the schema at /openapi.json. Every "
                    "request needs a bearer token bound to a tenant (create one with 'personae serve-api tokens "
                    "create --tenant T'). The store console is at /console (sign in with a token holding the "
                    "admin scope). Needs the service extra: pip install 'personae[service]'.",
    )
    add_config_options(parser, ServeApiOptions, defaults=_store_default(), shown=_STORE_SHOWN)
    add_model_options(parser, default_model=None,
                      default_model_help="the judge's own LM, or 'local' with a reward-model judge")
    parser.description += " --model is the LM that writes personas; 'none' writes no personas."
    parser.set_defaults(run=run)

    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    register_tokens(actions)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from personae.errors import ConfigError
    from personae.lm import CostMeter
    from personae.service import REWARD_MODEL_PREFIX, open_store, serve

    options = config_from_args(ServeApiOptions, args)

    def lm_for(model: str) -> Any:
        return build_lm(argparse.Namespace(**{**vars(args), "model": model}))

    # torch's OpenMP threads sleep between forward passes instead of spinning for the CPU the
    # HTTP work needs (must be set before torch starts; a value the user set is kept)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not options.service.auth and options.service.cors_origins:
        raise ConfigError("--cors-origin needs authentication: drop --no-auth")
    store = open_store(options.store, options.judge, lm_for, writer=args.model, logprobs=options.logprobs,
                       device=options.device, max_batch=options.max_batch, threads=options.torch_threads,
                       debounce=options.debounce, update_workers=options.update_workers,
                       durability=options.durability, lease=options.lease, runtime=options.runtime)
    writer = args.model or ("local" if options.judge.startswith(REWARD_MODEL_PREFIX) else options.judge)
    settings = dataclasses.replace(options.service, secrets=tuple(s for s in (args.api_key,) if s))
    with store:
        live = [t for t in store.tokens.list() if t.revoked_at is None]
        if settings.auth and not live:
            print("personae: no tokens yet: every request gets 401 until you run "
                  f"'personae serve-api tokens create --tenant T --store {options.store}'", file=sys.stderr)

        def ready(url: str) -> None:
            judge = store.backend.name if store.backend is not None else "none"
            print(f"serving {store.database} on {url} (judge: {judge}; personas written by "
                  f"{'nobody' if writer == 'none' else writer}); the schema is at {url}/openapi.json; "
                  f"MCP at {url}/mcp/", flush=True)

        serve(store, host=options.host, port=options.port, settings=settings, meter=CostMeter(entries=False),
              access_log=options.access_log, log_level="info" if args.verbose else "warning",
              limit_concurrency=options.limit_concurrency, ready=ready)
    return 0
