"""Acknowledged means durable: ``personae serve-api`` under SIGKILLs, database restarts and LM faults.

For each database (SQLite, then PostgreSQL), the service runs under a supervisor this script
controls, on one port. ``--clients`` threads (16 by default), each a ``PersonaeClient`` with its
retries, add preferences with client ids (``c3-17``: client 3's 17th pair) to ``--users`` users
of their own (8) and ask for judgments, pausing ``--think`` seconds on average between calls
(0.4), for ``--seconds``; the service runs four update workers. Meanwhile the supervisor SIGKILLs ``serve-api`` at
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
import logging
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import table  # noqa: E402

from personae.testing.chaos import ChaosPlan, Outcome, chaos_run, durability_throughput  # noqa: E402


def _p50_max(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {max(values):.2f}" if values else "-"


def report(outcomes: list[Outcome]) -> bool:
    rows, ok = [], True
    for o in outcomes:
        f = o.findings()
        ok &= f.met
        rows.append((o.database, f"{o.seconds:.0f}", f.clients, o.kills, o.db_restarts, f.requests, f.acked, f.found,
                     f.lost, f.doubled, f.phantom, f"{o.jobs.get('done', 0)}/{o.jobs.get('failed', 0)}/{f.jobs_left}",
                     _p50_max(f.recovery), _p50_max(f.db_recovery), f.answers_500, f.without_retry_after, f.hangs,
                     f"{f.clients_done}/{f.clients}", "yes" if f.met else "NO"))
        crashed = [log.crashed for log in o.logs if log.crashed]
        if crashed:
            print(f"{o.database}: client loops that crashed: {crashed[:3]}", file=sys.stderr)
    print(table(["database", "s", "clients", "kills", "db restarts", "requests", "acked writes", "found", "lost",
                 "doubled", "phantom", "jobs done/failed/left", "recovery p50/max s", "db recovery p50/max s",
                 "500s", "429/503 without Retry-After", "hangs", "clients done", "targets met"], rows))
    print("\ntargets: lost 0, doubled 0, phantom 0, jobs left 0, 500s 0, no 429/503 without Retry-After, hangs 0, "
          "every client done, recovery after a kill < 5 s (max)")
    for o in outcomes:
        f = o.findings()
        print(f"\n{o.database}: answers by status (per attempt): "
              + ", ".join(f"{k} {n}" for k, n in sorted(f.statuses.items(), key=lambda kv: -kv[1]))
              + f" (ConnectError: refused while the service was down, {f.refused})")
        adds = sum(log.adds for log in o.logs)
        judgments = sum(log.judgments for log in o.logs)
        add_errors = sum((log.add_errors for log in o.logs), Counter())
        judge_errors = sum((log.judge_errors for log in o.logs), Counter())
        print(f"  calls: {adds} add calls (errors after the client's retries: {dict(add_errors) or 0}, each retried "
              f"until acknowledged); {judgments} judgments (errors: {dict(judge_errors) or 0})")
        print(f"  update jobs: {dict(o.jobs)}, failed by kind {dict(o.failure_kinds) or 0}, every failed job with a "
              f"reason: {o.failed_without_reason == 0}; settled {o.settle_s:.1f} s after the clients stopped")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--users", type=int, default=8, help="users of each client")
    parser.add_argument("--think", type=float, default=0.4, help="mean seconds a client pauses between calls")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pg-restarts", type=int, default=3)
    parser.add_argument("--lm-fault-rate", type=float, default=0.2)
    parser.add_argument("--durability-adds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="short and small: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.clients, args.kills, args.pg_restarts, args.durability_adds = 12.0, 4, 2, 1, 50
    logging.getLogger("httpx").setLevel(logging.WARNING)
    plan = ChaosPlan(seconds=args.seconds, clients=args.clients, users=args.users, think_s=args.think,
                     kills=args.kills, db_restarts=args.pg_restarts,
                     lm_fault_rate=args.lm_fault_rate, seed=args.seed)
    outcomes = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for database in args.databases.split(","):
            print(f"{database}: {args.clients} clients for {args.seconds:.0f} s ...", file=sys.stderr, flush=True)
            outcomes.append(chaos_run(database.strip(), plan, folder))
        ok = report(outcomes)
        rows = durability_throughput(folder, args.durability_adds)
    print("\nSQLite add throughput, one writer in this process, single-pair adds:")
    print(table(["durability", "adds/s", "vs normal"],
                [(name, f"{rate:.0f}", f"{rate / rows[0][1]:.2f}") for name, rate in rows]))
    print(vars(plan))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
