"""Options and helpers shared by the commands. Only the CLI prints."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

from personae.cli.options import add_config_options, config_from_args

C = TypeVar("C")

__all__ = ["add_data_options", "add_executor_options", "add_model_options", "build_lm", "digest", "executor",
           "load_data", "prepare_environment", "print_counts", "progress", "run_spec", "share_key_with_workers"]


def add_model_options(parser: argparse.ArgumentParser, *, default_model: str | None = "local",
                      default_model_help: str | None = None, max_attempts: int | None = None) -> None:
    """The LM options (:class:`~personae.specs.LMSpec`) with ``--concurrency`` and ``--max-attempts``; a
    command whose ``--model`` defaults to something else says so with ``default_model`` and, where that
    is not a model string, ``default_model_help`` (what the help shows as the default); so does one
    that tries its items another number of times, with ``max_attempts``."""
    from personae.specs import RunSpec

    shown = {"model": default_model_help} if default_model_help else None
    defaults: dict[str, Any] = {"model": default_model}
    if max_attempts is not None:
        defaults["max_attempts"] = max_attempts
    add_config_options(parser, RunSpec, only=(*_lm_fields(), "concurrency", "max_attempts"),
                       defaults=defaults, shown=shown)


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """Where the items run: ``--executor``, ``--ray-address``, ``--workers``."""
    from personae.specs import RunSpec

    add_config_options(parser, RunSpec, only=("executor", "ray_address", "workers"), title="execution")


def _lm_fields() -> tuple[str, ...]:
    import dataclasses

    from personae.specs import LMSpec

    return tuple(f.name for f in dataclasses.fields(LMSpec))


def run_spec(args: argparse.Namespace) -> Any:
    """The :class:`~personae.specs.RunSpec` the parsed options describe (options a command does not
    have keep their defaults)."""
    from personae.specs import RunSpec

    return config_from_args(RunSpec, args)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The data argument and its reading options (:class:`~personae.specs.DataSpec`)."""
    from personae.specs import DataSpec

    add_config_options(parser, DataSpec)


def prepare_environment(args: argparse.Namespace) -> None:
    """Settings that must be in place before DSPy or LiteLLM are imported."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    cache_dir = getattr(args, "cache_dir", None)
    if cache_dir:
        os.environ["DSPY_CACHEDIR"] = str(Path(cache_dir).expanduser())
    else:
        os.environ.setdefault("DSPY_CACHEDIR", str(Path("~/.cache/personae/dspy").expanduser()))


def parse_columns(spec: str | None) -> dict[str, str] | None:
    from personae.errors import ConfigError

    if not spec:
        return None
    mapping = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--columns expects name=column pairs separated by commas, got {part!r}")
        mapping[key.strip()] = value.strip()
    return mapping


def load_data(args: argparse.Namespace, err: TextIO | None = None) -> Any:
    """Load the command's data; records skipped as invalid are listed on ``err``, one line each
    (the first 20), after a one-line summary."""
    import logging

    from personae.data import load_preferences

    # The skips are printed here; the loader's warnings about them would repeat each one.
    loader_log = logging.getLogger("personae.data._loaders")

    def quiet(record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING

    loader_log.addFilter(quiet)
    try:
        data = load_preferences(args.data, columns=parse_columns(args.columns), split=args.split,
                                skip_invalid=args.skip_invalid, limit=args.limit)
    finally:
        loader_log.removeFilter(quiet)
    if data.skipped:
        out = err or sys.stderr
        print(f"personae: {data.skipped_summary()}", file=out)
        for line in data.skipped_lines():
            print(f"personae: skipped {line}", file=out)
    return data


def build_lm(args: argparse.Namespace) -> Any:
    """The LM the model options describe; ``args.concurrency`` gets its default for that model."""
    spec = run_spec(args)
    args.concurrency = spec.resolved_concurrency()
    assert spec.lm is not None
    return spec.lm.build()


def share_key_with_workers(args: argparse.Namespace) -> None:
    """Put ``--api-key`` where Ray workers read it: a local Ray inherits this process's
    environment, and the key never travels with a task. On a cluster, set it on the nodes."""
    key = getattr(args, "api_key", None)
    if key:
        from personae.runs import KEY_ENV

        os.environ.setdefault(KEY_ENV, key)


@contextmanager
def executor(args: argparse.Namespace, concurrency: int, name: str = "personae") -> Iterator[Any]:
    """The executor ``--executor`` asks for, with ``concurrency`` items in flight; closed afterwards
    (for Ray, ``--api-key`` is put where local workers read it, never sent with a task)."""
    import dataclasses

    from personae.runs import open_executor

    with open_executor(dataclasses.replace(run_spec(args), concurrency=concurrency), name) as pool:
        yield pool


def digest(path: str | None) -> str | None:
    """A fingerprint of a file or of a folder's JSON files: judgments of other contents are not reused."""
    import hashlib

    if not path:
        return None
    target = Path(path)
    files = sorted(target.glob("*.json")) if target.is_dir() else [target] if target.exists() else []
    h = hashlib.sha1()
    for file in files:
        h.update(file.name.encode("utf-8") + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def progress() -> Any:
    """The progress display for a command: a bar on a terminal, plain lines otherwise."""
    from personae.runs import progress_for

    return progress_for(sys.stderr)


def print_counts(counts: Any, noun: str = "items") -> None:
    """The closing count of a command: succeeded, resumed, failed by kind."""
    print(counts.line(noun))


# -- shared by several commands ----------------------------------------------------------------

def add_program_options(parser: argparse.ArgumentParser) -> None:
    """``--program`` and ``--demos``: which persona-inference program to run."""
    from personae.specs import InferenceProgramSpec

    add_config_options(parser, InferenceProgramSpec)


def add_judge_model_options(parser: argparse.ArgumentParser) -> None:
    """``--judge-model``, ``--judge-api-base``, ``--judge-api-key``: a second model that judges."""
    from personae.specs import JudgeModelSpec

    add_config_options(parser, JudgeModelSpec)


def inference_program(args: argparse.Namespace) -> Any:
    """The :class:`PersonaInference` that ``--program`` and ``--demos`` ask for (None: the default)."""
    from personae.data import read_persona_demos

    demos = read_persona_demos(args.demos) if args.demos else None
    if args.program:
        from personae.optimizers import load_persona_inference

        return load_persona_inference(args.program, demos=demos)
    if demos is not None:
        from personae.programs import PersonaInference

        return PersonaInference(demos=demos)
    return None


def judge_lm_from_args(args: argparse.Namespace) -> Any:
    """The judge's LM from ``--judge-model``, ``--judge-api-base`` and ``--judge-api-key`` (the other
    model options shared with ``--model``); None when no ``--judge-model`` was given."""
    from personae.errors import ConfigError

    if not args.judge_model:
        if args.judge_api_base or args.judge_api_key:
            raise ConfigError("--judge-api-base and --judge-api-key need --judge-model")
        return None
    spec = run_spec(args).lm
    try:
        return spec.build(model=args.judge_model, api_base=args.judge_api_base, api_key=args.judge_api_key,
                          engine="auto")
    except ConfigError as exc:  # its settings are the judge's options here, not --api-base and --api-key
        raise ConfigError(f"the judge's model (--judge-model, --judge-api-base, --judge-api-key): {exc}") from exc


def register_tokens(sub: Any) -> None:
    """``tokens create|list|revoke``: the service's bearer tokens, in a store (``serve-api tokens``
    and ``store tokens`` are this one command)."""
    from personae.specs import StoreAdminOptions, TokenOptions

    tokens = sub.add_parser("tokens", help="create, list and revoke the service's bearer tokens")
    verbs = tokens.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser("create", help="a new token bound to a tenant, with its scopes and expiry (shown once)")
    add_config_options(create, TokenOptions, only=("tenant", "name", "scopes", "expires"), required=("tenant",))
    listing = verbs.add_parser("list", help="the tokens (ids, tenants, scopes, expiry, names; never the secrets)")
    add_config_options(listing, TokenOptions, only=("tenant",))
    revoke = verbs.add_parser("revoke", help="revoke a token by its id (effective within serve-api's "
                                             "--token-cache seconds, 5 by default)")
    add_config_options(revoke, TokenOptions, only=("token_id",))
    for verb in (create, listing, revoke):
        add_config_options(verb, StoreAdminOptions, only=("store",),
                           defaults={"store": os.environ.get("PERSONAE_STORE", "personae.db")},
                           shown={"store": "$PERSONAE_STORE or personae.db; prefer the variable for a URL with a "
                                           "password"})
        verb.set_defaults(run=run_tokens)


_SPANS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_expiry(text: str, *, now: float | None = None) -> float:
    """``--expires``: seconds since the epoch from a span (``90s``, ``15m``, ``12h``, ``30d``) or an
    ISO date or time (UTC unless it names a zone); :class:`ConfigError` for anything else."""
    import re
    import time
    from datetime import datetime, timezone

    from personae.errors import ConfigError

    now = time.time() if now is None else now
    span = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text.lower())
    if span:
        seconds = float(span.group(1)) * _SPANS[span.group(2)]
        if seconds <= 0:
            raise ConfigError(f"--expires {text!r}: a token must live a moment at least")
        return now + seconds
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--expires takes a span (90s, 15m, 12h, 30d) or an ISO date or time "
                          f"(2027-01-31, 2027-01-31T18:00:00+01:00), not {text!r}") from None
    moment = (at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)).timestamp()
    if moment <= now:
        raise ConfigError(f"--expires {text!r} is in the past")
    return moment


def _when(seconds: float | None) -> str:
    from datetime import datetime, timezone

    return "never" if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def run_tokens(args: argparse.Namespace) -> int:
    """Create, list or revoke a token; the secret is printed once, at creation."""
    import time

    from personae.store import PersonaStore
    from personae.store._tokens import DEFAULT_SCOPES, scopes_of

    if args.verb == "create":   # options are checked before the store is opened
        scopes = scopes_of(args.scopes) if args.scopes else DEFAULT_SCOPES
        expires_at = parse_expiry(args.expires) if args.expires else None
    with PersonaStore(args.store, background=False) as store:
        if args.verb == "create":
            record, secret = store.tokens.create(args.tenant, args.name, scopes=scopes, expires_at=expires_at)
            print(f"token {record.id} for tenant {record.tenant!r} in {store.database}, scopes "
                  f"{','.join(record.scopes)}, expires {_when(record.expires_at)}; it is shown only now:")
            print(secret)
        elif args.verb == "list":
            now = time.time()
            for token in store.tokens.list(args.tenant):
                state = "revoked" if token.revoked_at is not None else \
                    "expired" if token.expires_at is not None and token.expires_at <= now else "live"
                print(f"{token.id}  {token.tenant}  {state}  {','.join(token.scopes)}  "
                      f"expires {_when(token.expires_at)}  {token.name}".rstrip())
        elif not store.tokens.revoke(args.token_id):
            print(f"personae: error: no live token {args.token_id!r}", file=sys.stderr)
            return 2
        else:
            print(f"revoked {args.token_id}")
    return 0
