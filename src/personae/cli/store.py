"""``personae store VERB``: the persona store for its operator, on a store URL.

The verbs are declared once in :data:`VERBS` (the arguments each takes, the store call it
makes); the parser and the output come from that table. Text for a terminal by default,
``--json`` for scripts. Exports and forgets are audited as ``cli`` (``personae store audit``
lists the log). ``personae store tokens`` manages the service's bearer tokens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from personae.cli._common import register_tokens
from personae.cli.options import add_config_options
from personae.specs import StoreAdminOptions, StoreConsoleOptions, StoreVerbArgs

__all__ = ["VERBS", "register"]


@dataclass(frozen=True)
class Verb:
    """One verb: its name and help, the arguments it takes (fields of :class:`StoreVerbArgs`),
    and the store call that answers it."""

    name: str
    help: str
    args: tuple[str, ...]
    call: Callable[[Any, argparse.Namespace], Any]


def _export(store: Any, args: argparse.Namespace) -> Any:
    judge = store.export(args.user_id, args.out, version=args.version)
    if args.out is None:
        return judge.to_dict()
    target = Path(args.out)
    return {"user_id": args.user_id, "wrote": str(target / f"{judge.user_id}.json" if target.is_dir() else target)}


def _forget(store: Any, args: argparse.Namespace) -> Any:
    from personae.errors import ConfigError

    if not args.yes:
        raise ConfigError(f"forget removes everything stored on {args.user_id!r} and cannot be undone: add --yes")
    removed = store.forget(args.user_id)
    if args.erase_now:
        store.erase()
    return {"user_id": args.user_id, "removed": removed}


VERBS: tuple[Verb, ...] = (
    Verb("users", "this tenant's users, in id order, a page at a time", ("limit", "after"),
         lambda store, a: store.users(limit=a.limit, after=a.after)),
    Verb("persona", "a user's current persona, its version, pairs seen and prequential accuracy", ("user_id",),
         lambda store, a: store.persona(a.user_id)),
    Verb("history", "every persona version of a user: how it was made and how it did", ("user_id",),
         lambda store, a: store.history(a.user_id)),
    Verb("export", "a user's fitted judge, the JSON personae fit writes (printed, or written to --out)",
         ("user_id", "out", "version"), _export),
    Verb("import", "take in a folder of judges fitted by personae fit, as each user's newest persona", ("folder",),
         lambda store, a: {"imported": store.import_judges(a.folder)}),
    Verb("forget", "remove everything stored on a user, text gone from the files too (needs --yes)",
         ("user_id", "yes", "erase_now"), _forget),
    Verb("jobs", "update jobs, newest first: pending, running, done, and failed with their reasons",
         ("status", "limit"), lambda store, a: store.jobs(status=a.status, limit=a.limit)),
    Verb("audit", "the audit log, newest first: every export and forget, by whom (token id, console, cli...) "
         "and when", ("limit",), lambda store, a: store.audit(limit=a.limit)),
)
"""The verbs of ``personae store``, declared once."""


def register(sub: Any) -> None:
    """Add ``personae store`` and its verbs to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser("store", help="the persona store for its operator: users, personas, jobs, tokens",
                            description="Read and manage a persona store (an SQLite file or a PostgreSQL URL) "
                                        "without the service: its users, their personas and history, exports "
                                        "and imports of fitted judges, forgetting a user, update jobs, the audit "
                                        "log, tokens.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    defaults = {"store": os.environ.get("PERSONAE_STORE", "personae.db")}
    for verb in VERBS:
        command = verbs.add_parser(verb.name, help=verb.help, description=verb.help[0].upper() + verb.help[1:] + ".")
        add_config_options(command, StoreVerbArgs, only=verb.args)
        add_config_options(command, StoreAdminOptions, defaults=defaults,
                           shown={"store": "$PERSONAE_STORE or personae.db"})
        command.set_defaults(run=run, call=verb.call)
    register_tokens(verbs)
    console = verbs.add_parser(
        "console", help="the store console in the browser, on 127.0.0.1, for one operator",
        description="Serve the store console (the /console pages of serve-api) for one tenant on 127.0.0.1, "
                    "behind a token made for this run and printed in its address: users, persona versions and "
                    "their evidence, prequential accuracy, jobs, a judging playground (judged with --model), "
                    "export and forget.")
    add_config_options(console, StoreConsoleOptions)
    add_config_options(console, StoreAdminOptions, defaults=defaults, only=("store", "tenant"),
                       shown={"store": "$PERSONAE_STORE or personae.db"})
    from personae.cli._common import add_model_options

    add_model_options(console)
    console.set_defaults(run=run_console)


def run(args: argparse.Namespace) -> int:
    """Answer the verb from the store and print it; exit status 0 (2 for what the store refuses)."""
    from personae.errors import ConfigError
    from personae.store import PersonaStore, acting_as

    if "://" not in args.store and not Path(args.store).exists():   # reading a mistyped path would create it
        raise ConfigError(f"no store at {args.store}: give an existing SQLite file or a postgresql:// URL")
    with PersonaStore(args.store, background=False) as root, acting_as("cli"):
        answer = args.call(root.for_tenant(args.tenant), args)
    print(json.dumps(_plain(answer), indent=1) if args.json else _text(_plain(answer)))
    return 0


def run_console(args: argparse.Namespace) -> int:
    """Serve the console for one operator until interrupted; exit status 0."""
    import secrets

    from personae.cli._common import build_lm
    from personae.errors import ConfigError
    from personae.runs import register_secrets
    from personae.service import run_app
    from personae.store import PersonaStore
    from personae.web import ConsoleAccess, console_app

    register_secrets(args.api_key)   # never on a page or in a log line
    if "://" not in args.store and not Path(args.store).exists():
        raise ConfigError(f"no store at {args.store}: give an existing SQLite file or a postgresql:// URL")
    token = secrets.token_urlsafe(24)
    with PersonaStore(args.store, lm=build_lm(args), background=False) as store:
        def ready(url: str) -> None:
            print(f"console of tenant {args.tenant} of {store.database} on {url}/console/login?token={token}\n"
                  "(the token in this address, made for this run, signs you in; Ctrl-C stops)", flush=True)

        run_app(console_app(store, ConsoleAccess.operator(token, args.tenant)), port=args.port, ready=ready)
    return 0


def _plain(value: Any) -> Any:
    """Any answer as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _scalar(key: str, value: Any) -> str:
    """A value for a terminal: ``-`` for none, times (``at``, ``*_at``: seconds since the epoch) as
    UTC dates, other fractions to four decimals."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and (key == "at" or key.endswith("_at")):
        return datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text(value: Any, indent: str = "") -> str:
    """JSON values as lines for a terminal: a mapping as ``key: value``, a list one item a line
    (mappings in a list separated by a blank line)."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{indent}{key}:", _text(item, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {_scalar(str(key), item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return f"{indent}(none)"
        sep = "\n\n" if any(isinstance(v, dict) for v in value) else "\n"
        return sep.join(_text(item, indent) for item in value)
    return f"{indent}{value}"

