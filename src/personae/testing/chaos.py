"""Acknowledged means durable, tried for real: ``personae serve-api`` under SIGKILLs, database
restarts and LM faults, with every HTTP attempt recorded and the database read back after.

Shared by ``tests/test_chaos.py`` (a few seconds, one kill) and ``benchmarks/chaos.py`` (the full
figures). :func:`chaos_run` runs the service under a :class:`Supervisor` on one port, lets
clients (:class:`~personae.client.PersonaeClient` with its retries, through a :class:`Recording`
transport) add preferences with client ids and ask for judgments while the supervisor SIGKILLs
and restarts it (and restarts PostgreSQL), with a :func:`~personae.testing.fault_server` as the
LM; :meth:`Outcome.findings` says what was lost, doubled or answered wrongly.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from personae.client import PersonaeClient
from personae.errors import ServiceError
from personae.testing._faults import Faults, fault_server
from personae.testing._postgres import PostgresServer
from personae.testing._service import CLI, create_token

__all__ = ["Attempt", "ChaosPlan", "ClientLog", "Findings", "History", "Outcome", "Recording", "Supervisor",
           "chaos_run", "durability_throughput"]

CLIENT_TIMEOUT_S = 30.0
RECOVERY_TARGET_S = 5.0


@dataclass(frozen=True)
class ChaosPlan:
    """What a run does: for how long, with how many clients (each with ``users`` users of its own,
    pausing ``think_s`` on average between calls, as an application's users would), how many
    kills of the service and restarts of PostgreSQL, what fraction of LM requests fail, and the
    seed of every choice."""

    seconds: float = 60.0
    clients: int = 16
    users: int = 8
    think_s: float = 0.4
    kills: int = 10
    db_restarts: int = 3
    lm_fault_rate: float = 0.2
    seed: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the history ------------------------------------------------------------------------------------

@dataclass
class Attempt:
    """One HTTP attempt: when it started and ended (monotonic), its route, its answer or error."""

    start: float
    end: float
    method: str
    path: str
    status: int | None
    error: str | None
    retry_after: str | None


@dataclass
class History:
    """Every attempt of every client, in the order they ended (thread-safe)."""

    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempt: Attempt) -> None:
        """Record one attempt."""
        with self.lock:
            self.attempts.append(attempt)


class Recording(httpx.BaseTransport):
    """A transport that records every attempt the client makes into the history."""

    def __init__(self, history: History) -> None:
        self.inner = httpx.HTTPTransport()
        self.history = history

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and record its answer or its transport error."""
        start = time.monotonic()
        route = request.url.path.rsplit("/", 1)[-1] if "/users/" in request.url.path else request.url.path
        try:
            response = self.inner.handle_request(request)
        except Exception as exc:
            self.history.add(Attempt(start, time.monotonic(), request.method, route, None, type(exc).__name__, None))
            raise
        self.history.add(Attempt(start, time.monotonic(), request.method, route, response.status_code, None,
                                 response.headers.get("retry-after")))
        return response

    def close(self) -> None:
        """Close the connections."""
        self.inner.close()


# -- the supervisor -----------------------------------------------------------------------------------

class Supervisor:
    """``personae serve-api`` on a fixed port: started, SIGKILLed and started again."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv = [*argv, "--port", str(port)]
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the service (its output appended to the log)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.starts += 1

    def ready(self, since: float, timeout: float = 120.0) -> float:
        """Seconds from ``since`` until ``/readyz`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"serve-api exited ({self.process.returncode}); see {self.log}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - since
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"serve-api was not ready in {timeout:.0f} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL the service and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """Stop the service (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


# -- the clients ---------------------------------------------------------------------------------------

@dataclass
class ClientLog:
    """One client's account: the pair ids it sent and those acknowledged, its calls and their
    errors after the client's own retries, adds it gave up on, and a crash of its loop."""

    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    adds: int = 0
    add_errors: Counter[str] = field(default_factory=Counter)
    judgments: int = 0
    judge_errors: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    crashed: str | None = None


def _pair(client: int, n: int) -> dict[str, Any]:
    words = ["plain", "detailed", "brief", "formal", "playful", "technical", "gentle", "direct"]
    a, b = words[n % len(words)], words[(3 * n + client) % len(words)]
    return {"id": f"c{client}-{n}", "prompt": f"Client {client} asks question {n}: how should I plan week {n % 9}?",
            "chosen": f"A {a} answer to question {n}.", "rejected": f"A {b} and much longer answer to question {n}, "
                                                                      "with several digressions."}


def run_client(k: int, url: str, token: str, history: History, end: float, give_up: float, plan: ChaosPlan,
               log: ClientLog) -> None:
    """Client ``k``'s loop until ``end``: add (70%, once it has a user: an add is retried until
    acknowledged, up to ``give_up``) or judge, with a pause between calls."""
    rng = random.Random(plan.seed * 1000 + k)
    client = PersonaeClient(url, token=token, retries=6, max_wait=2.0, timeout=CLIENT_TIMEOUT_S,
                            transport=Recording(history))
    n = 0
    known: list[str] = []   # users with an acknowledged pair: judging them is never "no such user"
    try:
        while time.monotonic() < end:
            time.sleep(rng.uniform(0, 2 * plan.think_s))
            user = f"c{k}-u{rng.randrange(plan.users)}"
            if not known or rng.random() < 0.7:
                batch = [_pair(k, n + i) for i in range(rng.randint(1, 2))]
                n += len(batch)
                ids = {p["id"] for p in batch}
                log.sent |= ids
                while True:   # an add is done once acknowledged; a client id makes the retry safe
                    log.adds += 1
                    try:
                        client.add_preferences(user, batch)
                        log.acked |= ids
                        if user not in known:
                            known.append(user)
                        break
                    except ServiceError as exc:
                        log.add_errors[f"{exc.status} {exc.kind}"] += 1
                        if time.monotonic() > give_up:
                            log.unfinished += 1
                            break
                        time.sleep(0.2)
            else:
                log.judgments += 1
                p = _pair(k, rng.randrange(10_000))
                try:
                    client.judge(rng.choice(known), p["prompt"], p["chosen"], p["rejected"])
                except ServiceError as exc:
                    log.judge_errors[f"{exc.status} {exc.kind}"] += 1
    except Exception as exc:   # a bug in the client or the script: reported, never hidden
        log.crashed = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


# -- one run --------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What a run did (kills, restarts, recoveries), its history and client logs, and what the
    database held after it: pair ids with how often each is stored, jobs by status."""

    database: str
    seconds: float
    kills: int = 0
    db_restarts: int = 0
    recoveries: list[float] = field(default_factory=list)
    db_recoveries: list[float] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[ClientLog] = field(default_factory=list)
    clients_done: int = 0
    stored: Counter[str] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    failed_without_reason: int = 0
    failure_kinds: Counter[str] = field(default_factory=Counter)
    settle_s: float = 0.0

    def findings(self) -> Findings:
        """The run checked against its promises."""
        return _findings(self)


def chaos_run(database: str, plan: ChaosPlan, folder: Path) -> Outcome:
    """One run on ``database`` (``sqlite``: a file in ``folder``; ``postgresql``: a cluster of
    its own, ``synchronous_commit=on``), as ``plan`` says; progress lines go to stderr."""
    from personae.store import PersonaStore

    rng = random.Random(plan.seed)
    postgres: PostgresServer | None = None
    if database == "postgresql":
        postgres = PostgresServer(settings={"synchronous_commit": "on"})
        postgres.start()
        url = postgres.create_database("chaos")
    else:
        url = str(folder / "chaos.db")
    outcome = Outcome(database, plan.seconds)
    faults = Faults(rate=plan.lm_fault_rate, slow_s=2.0, seed=plan.seed)
    supervisor: Supervisor | None = None
    try:
        with fault_server(faults, lifetime_s=plan.seconds + 900) as lm:
            token = create_token(url, "acme")
            argv = [*CLI, "serve-api", "--store", url, "--judge", "openai/chaos", "--api-base", lm.api_base,
                    "--api-key", "test", "--no-cache", "--timeout", "5", "--debounce", "0.5", "--update-workers", "4",
                    "--lease", "3", "--retry-after", "1", "--no-console"]
            supervisor = Supervisor(argv, _free_port(), folder / f"serve-api-{database}.log")
            supervisor.start()
            supervisor.ready(time.monotonic())
            history = History()
            start = time.monotonic()
            end = start + plan.seconds
            logs = [ClientLog() for _ in range(plan.clients)]
            threads = [threading.Thread(target=run_client, args=(k, supervisor.url, token, history, end,
                                                                   end + 120, plan, logs[k]), daemon=True)
                       for k in range(plan.clients)]
            for thread in threads:
                thread.start()
            events = ["kill"] * plan.kills + (["db"] * plan.db_restarts if postgres else [])
            rng.shuffle(events)
            moments = sorted(rng.uniform(0.05, 0.9) * plan.seconds for _ in events)
            for i, (event, at) in enumerate(zip(events, moments, strict=True)):
                time.sleep(max(0.0, start + at - time.monotonic()))
                since = time.monotonic()
                if event == "kill":
                    supervisor.kill()
                    supervisor.start()
                    outcome.kills += 1
                    outcome.recoveries.append(supervisor.ready(since))
                else:
                    assert postgres is not None
                    postgres.restart("fast" if outcome.db_restarts % 2 == 0 else "immediate")
                    outcome.db_restarts += 1
                    outcome.db_recoveries.append(supervisor.ready(since))
                took = (outcome.recoveries if event == "kill" else outcome.db_recoveries)[-1]
                print(f"  {database}: {event} {i + 1}/{len(events)} at {time.monotonic() - start:5.1f} s, "
                      f"ready again after {took:.2f} s", file=sys.stderr, flush=True)
            for thread in threads:
                thread.join(max(1.0, end + 150 - time.monotonic()))
            outcome.clients_done = sum(1 for t, log in zip(threads, logs, strict=True)
                                       if not t.is_alive() and log.crashed is None and log.unfinished == 0)
            outcome.logs = logs
            outcome.attempts = history.attempts
            settle = time.monotonic()
            with PersonaStore(url, background=False) as store:
                while time.monotonic() - settle < 300:
                    counts = store.job_counts()
                    if counts["pending"] == 0 and counts["running"] == 0:
                        break
                    time.sleep(0.5)
                outcome.settle_s = time.monotonic() - settle
                supervisor.stop()
                acme = store.for_tenant("acme")
                for user in acme.users(limit=10_000):
                    outcome.stored.update(r.record_id for r in acme.preferences(user))
                for job in acme.jobs(limit=100_000):
                    outcome.jobs[job.status] += 1
                    if job.status == "failed":
                        outcome.failure_kinds[job.kind or "?"] += 1
                        outcome.failed_without_reason += not (job.error or "").strip()
    finally:
        if supervisor is not None:   # never left running, whatever went wrong
            supervisor.stop()
        if postgres is not None:
            postgres.stop()
    return outcome


def durability_throughput(folder: Path, adds: int) -> list[tuple[str, float]]:
    """Single-pair adds a second by one writer in this process to an SQLite store, at each durability."""
    from personae.store import PersonaStore, UpdatePolicy

    rows = []
    for durability in ("normal", "full"):
        with PersonaStore(folder / f"durability-{durability}.db", durability=durability, background=False,
                          policy=UpdatePolicy(debounce_s=3600)) as store:
            store.add_preferences("warm", [_pair(0, 0)])
            start = time.perf_counter()
            for n in range(adds):
                store.add_preferences(f"u{n % 50}", [_pair(1, n)])
            rows.append((durability, adds / (time.perf_counter() - start)))
    return rows


@dataclass(frozen=True)
class Findings:
    """What a run's history and database say against its promises."""

    requests: int
    acked: int
    found: int
    lost: int
    doubled: int
    phantom: int
    answers_500: int
    without_retry_after: int
    hangs: int
    refused: int
    jobs_left: int
    failed_without_reason: int
    clients_done: int
    clients: int
    recovery: list[float]
    db_recovery: list[float]
    statuses: Counter[str]

    @property
    def met(self) -> bool:
        """Every target: nothing lost, doubled or made up, no 500, every 429/503 with
        Retry-After, no hang, every job ended, every client done, recovery under 5 s."""
        return (self.lost == self.doubled == self.phantom == self.answers_500 == self.without_retry_after
                == self.hangs == self.jobs_left == self.failed_without_reason == 0
                and self.clients_done == self.clients and max(self.recovery, default=0.0) < RECOVERY_TARGET_S)


def _findings(o: Outcome) -> Findings:
    sent = set().union(*(log.sent for log in o.logs))
    acked = set().union(*(log.acked for log in o.logs))
    found = set(o.stored)
    errors = Counter(a.error for a in o.attempts if a.error is not None)
    statuses = Counter(str(a.status) if a.status is not None else str(a.error) for a in o.attempts)
    return Findings(
        requests=len(o.attempts), acked=len(acked), found=len(acked & found), lost=len(acked - found),
        doubled=sum(n - 1 for n in o.stored.values() if n > 1), phantom=len(found - sent),
        answers_500=sum(1 for a in o.attempts if a.status == 500),
        without_retry_after=sum(1 for a in o.attempts if a.status in (429, 503) and not a.retry_after),
        hangs=sum(errors.get(kind, 0) for kind in ("ReadTimeout", "WriteTimeout", "PoolTimeout")),
        refused=errors.get("ConnectError", 0), jobs_left=o.jobs.get("pending", 0) + o.jobs.get("running", 0),
        failed_without_reason=o.failed_without_reason, clients_done=o.clients_done, clients=len(o.logs),
        recovery=list(o.recoveries), db_recovery=list(o.db_recoveries), statuses=statuses)
