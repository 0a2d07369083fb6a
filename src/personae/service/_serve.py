"""Running the service: the judge backend from its spelling, the store, uvicorn."""

from __future__ import annotations

import gc
import ipaddress
import logging
import threading
from collections.abc import Callable
from typing import Any

from personae.errors import ConfigError, MissingExtraError
from personae.lm import CostMeter
from personae.store import JudgeBackend, LLMJudgeBackend, PersonaStore, RewardModelBackend

__all__ = ["REWARD_MODEL_PREFIX", "is_loopback", "judge_backend", "open_store", "run_app", "serve"]

logger = logging.getLogger("personae.service")

REWARD_MODEL_PREFIX = "reward-model:"


def judge_backend(spec: str, build_lm: Callable[[str], Any], *, logprobs: bool = False,
                  device: str = "auto", max_batch: int = 8, threads: int | None = None,
                  runtime: str = "torch") -> JudgeBackend:
    """``reward-model:DIR`` is a :class:`RewardModelBackend` on that folder; anything else is a
    model string for ``build_lm`` judged by an :class:`LLMJudgeBackend`."""
    if spec.startswith(REWARD_MODEL_PREFIX):
        folder = spec[len(REWARD_MODEL_PREFIX):]
        if not folder:
            raise ConfigError("--judge reward-model: needs the model's folder, e.g. reward-model:runs/rm")
        return RewardModelBackend(folder, device=device, max_batch=max_batch, threads=threads, runtime=runtime)
    return LLMJudgeBackend(build_lm(spec), logprobs=logprobs)


def open_store(url: str, judge: str, build_lm: Callable[[str], Any], *, writer: str | None = None,
               logprobs: bool = False, device: str = "auto", max_batch: int = 8, threads: int | None = None,
               debounce: float | None = None, update_workers: int | None = None,
               durability: str | None = None, lease: float | None = None,
               runtime: str = "torch") -> PersonaStore:
    """The persona store a serving command describes: its database ``url``, its ``judge`` (see
    :func:`judge_backend`), and the LM that writes personas: ``writer`` (``none``: no persona
    writing; default: the judge's own LM, or ``local`` beside a reward model); ``durability``
    as :class:`~personae.store.PersonaStore` takes it."""
    import dataclasses

    from personae.store import UpdatePolicy

    backend = judge_backend(judge, build_lm, logprobs=logprobs, device=device, max_batch=max_batch, threads=threads,
                            runtime=runtime)
    writer = writer or ("local" if judge.startswith(REWARD_MODEL_PREFIX) else None)
    persona_lm = None if writer == "none" else (build_lm(writer) if writer else backend.lm)
    policy = UpdatePolicy()
    if debounce is not None:
        policy = dataclasses.replace(policy, debounce_s=debounce)
    if update_workers is not None:
        policy = dataclasses.replace(policy, concurrency=update_workers)
    if lease is not None:
        policy = dataclasses.replace(policy, lease_s=lease)
    return PersonaStore(url, lm=persona_lm, backend=backend, policy=policy, durability=durability)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(store: PersonaStore, *, host: str = "127.0.0.1", port: int = 8000, settings: Any = None,
          meter: CostMeter | None = None, access_log: bool = False, log_level: str = "warning",
          limit_concurrency: int | None = None, ready: Callable[[str], None] | None = None) -> None:
    """Serve ``store`` on uvicorn until SIGINT or SIGTERM; running requests and update jobs finish.

    ``meter`` is installed as the process's DSPy usage tracker, so the metrics count every LM
    call, those of update jobs included. ``ready`` is called with the URL once the socket listens.
    """
    import dspy

    from personae.service._app import ServiceSettings, create_app

    settings = settings or ServiceSettings()
    if not settings.auth and not is_loopback(host):
        raise ConfigError(f"without authentication the service listens on loopback only, not {host!r}")
    meter = meter or CostMeter(entries=False)
    dspy.configure(usage_tracker=meter)
    app = create_app(store, settings=settings, meter=meter)
    run_app(app, host=host, port=port, access_log=access_log, log_level=log_level,
            limit_concurrency=limit_concurrency, ready=ready, graceful_s=30)


def run_app(app: Any, *, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False,
            log_level: str = "warning", limit_concurrency: int | None = None,
            ready: Callable[[str], None] | None = None, graceful_s: int = 5) -> None:
    """Run an ASGI app on uvicorn until SIGINT or SIGTERM (the service, the console, the run
    viewer); ``ready`` is called with the URL once the socket listens (``port`` 0 picks one)."""
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("service", "the HTTP service") from None
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            limit_concurrency=limit_concurrency, server_header=False,
                            timeout_graceful_shutdown=graceful_s, proxy_headers=False)
    server = uvicorn.Server(config)
    # Everything loaded so far (the model, DSPy, the libraries) lives as long as the process: out of
    # the collector's sight, a full collection no longer walks millions of objects mid-request.
    gc.collect()
    gc.freeze()
    if ready is not None:
        def announce() -> None:
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            if server.started:
                sockets = [s for srv in getattr(server, "servers", []) for s in srv.sockets]
                bound = sockets[0].getsockname()[1] if sockets else port
                ready(f"http://{host}:{bound}")

        threading.Thread(target=announce, daemon=True).start()
    server.run()
