"""``personae serve-api``: the persona store over HTTP; ``personae serve-api tokens``: its tokens."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from personae.cli._common import add_model_options, build_lm

__all__ = ["register"]

_DEFAULT_STORE = "personae.db"


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=os.environ.get("PERSONAE_STORE", _DEFAULT_STORE),
                        help="an SQLite file or a postgresql:// URL (default: $PERSONAE_STORE or personae.db; "
                             "prefer the variable for a URL with a password)")


def register(sub: Any) -> None:
    """Add ``personae serve-api`` and its options to ``sub``, the main parser's subcommands (with
    ``serve-api tokens`` and its verbs ``create``, ``list`` and ``revoke``)."""
    parser = sub.add_parser(
        "serve-api",
        help="serve the persona store over HTTP (personas, judging, ranking) with bearer tokens",
        description="Serve a persona store over HTTP on uvicorn: /v1 routes to add preferences, read personas, "
                    "judge and rank for a user; /healthz, /readyz, /metrics; the schema at /openapi.json. Every "
                    "request needs a bearer token bound to a tenant (create one with 'personae serve-api tokens "
                    "create --tenant T'). Needs the service extra: pip install 'personae[service]'.",
    )
    _add_store_option(parser)
    parser.add_argument("--judge", default="local",
                        help="'reward-model:DIR' (a model from 'personae distill reward-model', no LM at request "
                             "time) or a model string judged by the LLM ('local', openai/gpt-4o-mini; the model "
                             "options below apply) (default: local)")
    parser.add_argument("--logprobs", action="store_true",
                        help="with an LLM judge, read probabilities from token log-probabilities")
    parser.add_argument("--device", default="auto", help="reward-model device: auto, cpu, cuda (default auto)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="reward model: CPU threads for torch (default torch's, all cores; fewer leave "
                             "cores to the HTTP work)")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="reward model: most responses scored in one forward pass when requests arrive "
                             "together (default 8; larger answers more per second on a GPU, each answer later)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--no-auth", action="store_true",
                        help="no tokens: every request is tenant 'default' (only on a loopback address)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="let browsers on this origin call the API (repeatable; default: CORS off)")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    parser.add_argument("--body-timeout", type=float, default=30.0,
                        help="seconds a request body may take to arrive before 408 (default 30)")
    parser.add_argument("--threads", type=int, default=64, help="threads for the store's blocking calls (default 64)")
    parser.add_argument("--limit-concurrency", type=int, default=None,
                        help="answer 503 beyond this many connections in flight (default: no limit)")
    parser.add_argument("--debounce", type=float, default=None,
                        help="seconds after a user's last preference before its update runs (default 2; "
                             "an update never waits more than 30 s after the first new preference)")
    parser.add_argument("--update-workers", type=int, default=None, help="update jobs run at once (default 2)")
    parser.add_argument("--token-cache", type=float, default=5.0,
                        help="seconds a token lookup is trusted; a revoked token stops within it (default 5)")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    add_model_options(parser, default_model=None,
                      default_model_help="the judge's own LM, or 'local' with a reward-model judge")
    parser.description += " --model is the LM that writes personas; 'none' writes no personas."
    parser.set_defaults(run=run)

    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    tokens = actions.add_parser("tokens", help="create, list and revoke the service's bearer tokens")
    verbs = tokens.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser("create", help="a new token bound to a tenant (shown once)")
    create.add_argument("--tenant", required=True, help="the tenant the token may see")
    create.add_argument("--name", default="", help="a label for the token (who or what uses it)")
    listing = verbs.add_parser("list", help="the tokens (ids, tenants, names; never the secrets)")
    listing.add_argument("--tenant", default=None, help="only this tenant's")
    revoke = verbs.add_parser("revoke", help="revoke a token by its id (effective within 5 s)")
    revoke.add_argument("token_id")
    for verb in (create, listing, revoke):
        _add_store_option(verb)
        verb.set_defaults(run=run_tokens)


def run_tokens(args: argparse.Namespace) -> int:
    from personae.store import PersonaStore

    with PersonaStore(args.store, background=False) as store:
        if args.verb == "create":
            record, secret = store.tokens.create(args.tenant, args.name)
            print(f"token {record.id} for tenant {record.tenant!r} in {store.database}; it is shown only now:")
            print(secret)
        elif args.verb == "list":
            for token in store.tokens.list(args.tenant):
                state = "revoked" if token.revoked_at is not None else "live"
                print(f"{token.id}  {token.tenant}  {state}  {token.name}")
        elif not store.tokens.revoke(args.token_id):
            print(f"personae: error: no live token {args.token_id!r}", file=sys.stderr)
            return 2
        else:
            print(f"revoked {args.token_id}")
    return 0


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from personae.errors import ConfigError
    from personae.lm import CostMeter
    from personae.service import REWARD_MODEL_PREFIX, ServiceSettings, judge_backend, serve
    from personae.store import PersonaStore, UpdatePolicy

    def lm_for(model: str) -> Any:
        return build_lm(argparse.Namespace(**{**vars(args), "model": model}))

    # torch's OpenMP threads sleep between forward passes instead of spinning for the CPU the
    # HTTP work needs (must be set before torch starts; a value the user set is kept)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.no_auth and args.cors_origin:
        raise ConfigError("--cors-origin needs authentication: drop --no-auth")
    backend = judge_backend(args.judge, lm_for, logprobs=args.logprobs, device=args.device, max_batch=args.max_batch,
                            threads=args.torch_threads)
    writer = args.model or ("local" if args.judge.startswith(REWARD_MODEL_PREFIX) else None)
    persona_lm = None if writer == "none" else (lm_for(writer) if writer else backend.lm)
    policy = UpdatePolicy()
    if args.debounce is not None:
        policy = dataclasses.replace(policy, debounce_s=args.debounce)
    if args.update_workers is not None:
        policy = dataclasses.replace(policy, concurrency=args.update_workers)
    settings = ServiceSettings(auth=not args.no_auth, max_body_bytes=args.max_body_bytes,
                               cors_origins=list(args.cors_origin), threads=args.threads,
                               token_cache_s=args.token_cache, body_timeout_s=args.body_timeout,
                               secrets=tuple(s for s in (args.api_key,) if s))
    with PersonaStore(args.store, lm=persona_lm, backend=backend, policy=policy) as store:
        live = [t for t in store.tokens.list() if t.revoked_at is None]
        if settings.auth and not live:
            print("personae: no tokens yet: every request gets 401 until you run "
                  f"'personae serve-api tokens create --tenant T --store {args.store}'", file=sys.stderr)

        def ready(url: str) -> None:
            print(f"serving {store.database} on {url} (judge: {backend.name}; personas written by "
                  f"{'nobody' if persona_lm is None else getattr(persona_lm, 'model', 'the LM')}); "
                  f"the schema is at {url}/openapi.json", flush=True)

        serve(store, host=args.host, port=args.port, settings=settings, meter=CostMeter(entries=False),
              access_log=args.access_log, log_level="info" if args.verbose else "warning",
              limit_concurrency=args.limit_concurrency, ready=ready)
    return 0
