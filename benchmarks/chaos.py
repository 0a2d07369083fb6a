"""Acknowledged means durable: ``personae serve-api`` under SIGKILLs, database restarts and LM faults.

For each database (SQLite, then PostgreSQL), the service runs under a supervisor this script
controls, on one port. ``--clients`` threads (16 by default), each a ``PersonaeClient`` with its
retries, add preferences with client ids (``c3-17``: client 3's 17th pair) to users of their own
and ask for judgments, for ``--seconds``. Meanwhile the supervisor SIGKILLs ``serve-api`` at
random moments (``--kills`` times) and starts it again at once; on PostgreSQL it also restarts
the database server (``--pg-restarts`` times, alternating a fast shutdown and an immediate one,
which is a crash as far as the database knows: it recovers from its WAL). The LM behind the
judge and the persona writer is a fault server that answers a fraction ``--lm-fault-rate`` of
requests with HTTP 500 or 429, a two-second stall, non-JSON, truncated JSON, a value outside the
answer's choices, or a dropped connection.

Every HTTP attempt is recorded (a history: when, which route, the status or the transport error,
``Retry-After``), and every call's outcome. A client retries an add whose answer was an error
until it is acknowledged (a client id makes that safe), so its work is done when all its adds
were acknowledged. Then the script waits for the update jobs to settle and reads the database:

- every add answered 2xx is stored exactly once (``lost``, ``doubled``);
- nothing is stored that no client sent (``phantom``);
- every update job ends done, or failed with its reason (``jobs left`` running or pending: 0);
- no answer is a 500, no 503 lacks ``Retry-After``, no request hangs past the client's timeout;
- every client finishes its work.

Recovery is the time from a SIGKILL (or from the database's shutdown) to the service's
``/readyz`` answering 200 again. PostgreSQL runs with ``synchronous_commit=on`` here (the test
clusters of the suite turn it off for speed, which gives up exactly the promise measured).

Last, the add throughput of an SQLite store with ``durability`` normal and full (one writer in
this process, single-pair adds), the price of a disk sync per commit.

    python benchmarks/chaos.py                        # both databases, 60 s each (about 5 minutes)
    python benchmarks/chaos.py --databases sqlite     # one
    python benchmarks/chaos.py --smoke                # short and small: checks the script

Targets: on both databases 0 acknowledged writes lost, 0 doubled, 0 answers of 500, every client
done; recovery after a kill under 5 s at most.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import table  # noqa: E402

from personae.client import PersonaeClient  # noqa: E402
from personae.errors import ServiceError  # noqa: E402
from personae.testing import Faults, PostgresServer, create_token, fault_server  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from personae.cli.main import main; sys.exit(main())"]
CLIENT_TIMEOUT_S = 30.0


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
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)


class Recording(httpx.BaseTransport):
    """A transport that records every attempt the client makes into the history."""

    def __init__(self, history: History) -> None:
        self.inner = httpx.HTTPTransport()
        self.history = history

    def handle_request(self, request: httpx.Request) -> httpx.Response:
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
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
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


def run_client(k: int, url: str, token: str, history: History, end: float, give_up: float, seed: int,
               log: ClientLog) -> None:
    rng = random.Random(seed * 1000 + k)
    client = PersonaeClient(url, token=token, retries=6, max_wait=2.0, timeout=CLIENT_TIMEOUT_S,
                            transport=Recording(history))
    n = 0
    known: list[str] = []   # users with an acknowledged pair: judging them is never "no such user"
    try:
        while time.monotonic() < end:
            user = f"c{k}-u{rng.randrange(3)}"
            if not known or rng.random() < 0.7:
                batch = [_pair(k, n + i) for i in range(rng.randint(1, 3))]
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


def chaos_run(database: str, args: argparse.Namespace, folder: Path) -> Outcome:
    from personae.store import PersonaStore

    rng = random.Random(args.seed)
    postgres: PostgresServer | None = None
    if database == "postgresql":
        postgres = PostgresServer(settings={"synchronous_commit": "on"})
        postgres.start()
        url = postgres.create_database("chaos")
    else:
        url = str(folder / "chaos.db")
    outcome = Outcome(database, args.seconds)
    faults = Faults(rate=args.lm_fault_rate, slow_s=2.0, seed=args.seed)
    try:
        with fault_server(faults, lifetime_s=args.seconds + 900) as lm:
            token = create_token(url, "acme")
            argv = [*CLI, "serve-api", "--store", url, "--judge", "openai/chaos", "--api-base", lm.api_base,
                    "--api-key", "test", "--no-cache", "--timeout", "5", "--debounce", "0.5", "--update-workers", "2",
                    "--lease", "3", "--retry-after", "1", "--no-console"]
            supervisor = Supervisor(argv, _free_port(), folder / f"serve-api-{database}.log")
            supervisor.start()
            supervisor.ready(time.monotonic())
            history = History()
            start = time.monotonic()
            end = start + args.seconds
            logs = [ClientLog() for _ in range(args.clients)]
            threads = [threading.Thread(target=run_client, args=(k, supervisor.url, token, history, end,
                                                                   end + 120, args.seed, logs[k]), daemon=True)
                       for k in range(args.clients)]
            for thread in threads:
                thread.start()
            events = ["kill"] * args.kills + (["db"] * args.pg_restarts if postgres else [])
            rng.shuffle(events)
            moments = sorted(rng.uniform(0.05, 0.9) * args.seconds for _ in events)
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
                while time.monotonic() - settle < 180:
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
        if postgres is not None:
            postgres.stop()
    return outcome


def durability_throughput(folder: Path, adds: int) -> list[tuple[str, float]]:
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


def _p50_max(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {max(values):.2f}" if values else "-"


def report(outcomes: list[Outcome], args: argparse.Namespace) -> bool:
    rows, ok = [], True
    for o in outcomes:
        sent = set().union(*(log.sent for log in o.logs))
        acked = set().union(*(log.acked for log in o.logs))
        found = set(o.stored)
        lost = len(acked - found)
        doubled = sum(n - 1 for n in o.stored.values() if n > 1)
        phantom = len(found - sent)
        statuses = Counter(a.status for a in o.attempts if a.status is not None)
        errors = Counter(a.error for a in o.attempts if a.error is not None)
        hangs = errors.get("ReadTimeout", 0) + errors.get("WriteTimeout", 0) + errors.get("PoolTimeout", 0)
        no_retry_after = sum(1 for a in o.attempts if a.status in (429, 503) and not a.retry_after)
        left = o.jobs.get("pending", 0) + o.jobs.get("running", 0)
        crashed = [log.crashed for log in o.logs if log.crashed]
        good = (lost == 0 and doubled == 0 and phantom == 0 and statuses.get(500, 0) == 0 and hangs == 0
                and no_retry_after == 0 and left == 0 and o.failed_without_reason == 0
                and o.clients_done == len(o.logs) and (not o.recoveries or max(o.recoveries) < 5.0))
        ok &= good
        rows.append((o.database, f"{o.seconds:.0f}", len(o.logs), o.kills, o.db_restarts, len(o.attempts),
                     len(acked), len(acked & found), lost, doubled, phantom,
                     f"{o.jobs.get('done', 0)}/{o.jobs.get('failed', 0)}/{left}", _p50_max(o.recoveries),
                     _p50_max(o.db_recoveries), statuses.get(500, 0), no_retry_after, hangs,
                     f"{o.clients_done}/{len(o.logs)}",
                     "yes" if good else "NO"))
        if crashed:
            print(f"{o.database}: client errors: {crashed[:3]}", file=sys.stderr)
    print(table(["database", "s", "clients", "kills", "db restarts", "requests", "acked writes", "found", "lost",
                 "doubled", "phantom", "jobs done/failed/left", "recovery p50/max s", "db recovery p50/max s",
                 "500s", "429/503 without Retry-After", "hangs", "clients done", "targets met"], rows))
    print("\ntargets: lost 0, doubled 0, phantom 0, jobs left 0, 500s 0, no 429/503 without Retry-After, hangs 0, "
          "every client done, recovery after a kill < 5 s (max)")
    for o in outcomes:
        statuses = Counter(str(a.status) if a.status is not None else a.error for a in o.attempts)
        refused = sum(n for k, n in statuses.items() if k == "ConnectError")
        print(f"\n{o.database}: answers by status (per attempt): "
              + ", ".join(f"{k} {n}" for k, n in sorted(statuses.items(), key=lambda kv: -kv[1]))
              + f"; refused connections {refused}")
        adds = sum(log.adds for log in o.logs)
        judgments = sum(log.judgments for log in o.logs)
        add_errors = sum((log.add_errors for log in o.logs), Counter())
        judge_errors = sum((log.judge_errors for log in o.logs), Counter())
        print(f"  calls: {adds} add calls (errors after the client's retries: {dict(add_errors) or 0}, each retried "
              f"until acknowledged); {judgments} judgments (errors: {dict(judge_errors) or 0})")
        print(f"  update jobs: {dict(o.jobs)}, failed by kind {dict(o.failure_kinds) or 0}, "
              f"every failed job with a reason: {o.failed_without_reason == 0}; settled {o.settle_s:.1f} s after "
              "the clients stopped")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pg-restarts", type=int, default=3)
    parser.add_argument("--lm-fault-rate", type=float, default=0.2)
    parser.add_argument("--durability-adds", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="short and small: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.clients, args.kills, args.pg_restarts, args.durability_adds = 12.0, 4, 2, 1, 50
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    outcomes = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for database in args.databases.split(","):
            print(f"{database}: {args.clients} clients for {args.seconds:.0f} s ...", file=sys.stderr, flush=True)
            outcomes.append(chaos_run(database.strip(), args, folder))
        ok = report(outcomes, args)
        rows = durability_throughput(folder, args.durability_adds)
    print("\nSQLite add throughput, one writer in process, single-pair adds:")
    print(table(["durability", "adds/s", "vs normal"],
                [(name, f"{rate:.0f}", f"{rate / rows[0][1]:.2f}") for name, rate in rows]))
    print({"seconds": args.seconds, "clients": args.clients, "kills": args.kills, "pg_restarts": args.pg_restarts,
           "lm_fault_rate": args.lm_fault_rate, "seed": args.seed})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
