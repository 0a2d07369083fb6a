"""Overload: is it refused fast and fairly? ``personae serve-api`` with a judge of known capacity,
offered four times that capacity by two tenants.

The judge's model is a simulated OpenAI-compatible server on 127.0.0.1 (a process of its own)
that answers after ``--lm-latency`` seconds (default 0.4); the service runs
``--judge-concurrency SLOTS`` (8) judgments at once and lets ``--judge-queue QUEUE`` (2) of
each tenant's wait, at most 2 s. Two tenants, each with one seeded user (two preferences, no
persona: a judgment is one LM request).

Why these numbers: the judge's capacity (SLOTS / latency, about 18 a second) must be what runs
out, not the CPU: a judgment costs the server about 10 ms of Python (one GIL), a shed request
about 1 ms, and the client and the service share the machine. At a 50 ms LM and 4 slots
(capacity about 50/s, 200 requests/s offered) two cores saturate and every latency measures
the CPU instead. Two tenants with QUEUE waiters each, at most SLOTS / 2 in all, keep an admitted
request's wait near half a judgment: what the target on admitted latency needs.

1. **unloaded**: judgments one at a time (``--unloaded`` of them): p50 and p99 latency.
2. **capacity**: ``SLOTS`` clients judging back to back for 3 s: judgments a second, the judge's
   capacity with every slot busy and nothing waiting.
3. **overload**: for ``--seconds``, requests arrive at random (Poisson, seeded) at four times that
   capacity: a greedy tenant sends three quarters of them, a polite one a quarter (its quarter is
   alone the judge's whole capacity, more than its fair half). Nothing is retried.

Printed beside the targets: admitted (200) p50 and p99 latency (target: p99 within 2x of the
unloaded p99), time to shed (503) p50, p99 and max (target: p99 < 50 ms; the max of a
thousand refusals on two shared cores is one scheduling hiccup of the client or the server,
printed beside it), the polite tenant's judgments a second over the judge's capacity (target
>= 45%: it offers more than its fair half, so it should keep about half) and its share of the
completed judgments, and every answer by tenant and status.

    python benchmarks/overload.py              # about 50 s
    python benchmarks/overload.py --seconds 5  # a quick look

The client is one asyncio loop in this process (httpx.AsyncClient), the simulated LM a process
of its own; on a small machine they share the CPU with the server, so time to shed includes the
client's own scheduling (the server's own part of it is printed too: its Server-Timing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import percentiles, simulated_server, table  # noqa: E402

from personae.testing import create_token, serve_api  # noqa: E402

TENANTS = ("greedy", "polite")
JUDGE = {"prompt": "Plan a weekend in Lisbon.", "response_a": "Day 1: Alfama. Day 2: Belem.",
         "response_b": "Lisbon is the capital of Portugal, a city of seven hills and many trams."}


@dataclass(frozen=True)
class Answer:
    tenant: str
    status: int       # 0: no answer (a transport error)
    seconds: float
    server_s: float   # the server's own time, arrival to answer (its Server-Timing app;dur)


async def _send(http: Any, tenant: str, token: str) -> Answer:
    start = time.monotonic()
    server = float("nan")
    try:
        response = await http.post("/v1/users/u1/judge", json=JUDGE, headers={"Authorization": f"Bearer {token}"})
        status = response.status_code
        for part in response.headers.get("server-timing", "").split(","):
            if part.strip().startswith("app;dur="):
                server = float(part.strip()[len("app;dur="):]) / 1000
    except Exception:   # counted as status 0
        status = 0
    return Answer(tenant, status, time.monotonic() - start, server)


async def _closed(http: Any, token: str, clients: int, n: int | None, seconds: float | None) -> list[Answer]:
    """``clients`` loops judging back to back: ``n`` judgments in all, or for ``seconds``."""
    answers: list[Answer] = []
    left = [n if n is not None else 1 << 30]
    until = time.monotonic() + (seconds if seconds is not None else 1e9)

    async def loop() -> None:
        while left[0] > 0 and time.monotonic() < until:
            left[0] -= 1
            answers.append(await _send(http, TENANTS[0], token))

    await asyncio.gather(*(loop() for _ in range(clients)))
    return answers


async def _open(http: Any, tokens: dict[str, str], rates: dict[str, float], seconds: float,
                seed: int) -> list[Answer]:
    """Poisson arrivals at ``rates[tenant]`` a second for ``seconds``, each request sent at once."""
    rng = random.Random(seed)
    tasks: list[asyncio.Task[Answer]] = []
    start = time.monotonic()
    arrivals = sorted((t, tenant) for tenant, rate in rates.items()
                      for t in _poisson(rng, rate, seconds))
    for at, tenant in arrivals:
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_send(http, tenant, tokens[tenant])))
    return list(await asyncio.gather(*tasks))


def _poisson(rng: random.Random, rate: float, seconds: float) -> list[float]:
    times, t = [], rng.expovariate(rate)
    while t < seconds:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def _ms(samples: list[float]) -> tuple[float, float]:
    return percentiles(samples) if samples else (float("nan"), float("nan"))


def _cpu_s(pid: int) -> float:
    """CPU seconds the process has used (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(url: str, pid: int, tokens: dict[str, str], args: argparse.Namespace) -> bool:
    import httpx

    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as http:
        await _closed(http, tokens["greedy"], 1, 5, None)   # warm: connections, the server's first judgments
        unloaded = await _closed(http, tokens["greedy"], 1, args.unloaded, None)
        if any(a.status != 200 for a in unloaded):
            raise SystemExit(f"unloaded judgments failed: {Counter(a.status for a in unloaded)}")
        u50, u99 = _ms([a.seconds for a in unloaded])
        print(f"unloaded: p50 {u50:.1f} ms, p99 {u99:.1f} ms ({len(unloaded)} judgments one at a time)", flush=True)
        started, cpu = time.monotonic(), _cpu_s(pid)
        busy = await _closed(http, tokens["greedy"], args.slots, None, 3.0)
        judged = sum(a.status == 200 for a in busy)
        capacity = judged / (time.monotonic() - started)
        cpu_ms = 1000 * (_cpu_s(pid) - cpu) / max(1, judged)
        c50, c99 = _ms([a.seconds for a in busy if a.status == 200])
        print(f"capacity: {capacity:.1f} judgments/s with {args.slots} clients (p50 {c50:.1f} ms, p99 {c99:.1f} ms; "
              f"the server's CPU {cpu_ms:.1f} ms a judgment)", flush=True)
        offered = 4 * capacity
        rates = {"greedy": offered * 3 / 4, "polite": offered / 4}
        print(f"overload: {offered:.0f} requests/s for {args.seconds:g} s (greedy {rates['greedy']:.0f}/s, "
              f"polite {rates['polite']:.0f}/s) ...", flush=True)
        started = time.monotonic()
        answers = await _open(http, tokens, rates, args.seconds, args.seed)
        wall = time.monotonic() - started

    admitted = [a.seconds for a in answers if a.status == 200]
    shed = [a.seconds for a in answers if a.status == 503]
    a50, a99 = _ms(admitted)
    s50, s99 = _ms(shed)
    s_max = max(shed) * 1000 if shed else float("nan")
    in_server = [a.server_s for a in answers if a.status == 503]
    (v50, v99), v_max = _ms(in_server), max(in_server) * 1000 if in_server else float("nan")
    done = Counter(a.tenant for a in answers if a.status == 200)
    share = done["polite"] / sum(done.values()) if done else 0.0
    kept = done["polite"] / wall / capacity   # the polite tenant's judgments a second, of the capacity
    statuses = {tenant: Counter(a.status for a in answers if a.tenant == tenant) for tenant in TENANTS}
    other = sum(n for c in statuses.values() for s, n in c.items() if s not in (200, 503))
    checks = [
        ("admitted p99 within 2x of unloaded p99", a99 <= 2 * u99),
        ("time to shed < 50 ms (p50 and p99; the max is printed)", s99 < 50),
        ("polite tenant keeps >= 45% of the judge's capacity", kept >= 0.45),
        ("every answer 200 or 503", other == 0),
    ]
    rows: list[list[object]] = [
        ["unloaded judge p50 / p99 ms", f"{u50:.1f} / {u99:.1f}", "(baseline)"],
        ["judge capacity, judgments/s", f"{capacity:.1f}", f"({args.slots} slots, LM {args.lm_latency * 1000:.0f} ms)"],
        ["server CPU ms a judgment (at capacity)", f"{cpu_ms:.1f}", "(one core: the GIL)"],
        ["offered, requests/s (greedy + polite)", f"{rates['greedy']:.0f} + {rates['polite']:.0f}", "4x capacity"],
        ["admitted p50 / p99 ms", f"{a50:.1f} / {a99:.1f}", f"p99 <= {2 * u99:.1f} (2x unloaded p99)"],
        ["time to shed p50 / p99 / max ms", f"{s50:.1f} / {s99:.1f} / {s_max:.1f}", "p99 < 50"],
        ["  of it in the server p50 / p99 / max ms", f"{v50:.1f} / {v99:.1f} / {v_max:.1f}",
         "(Server-Timing app;dur)"],
        ["completed judgments/s (greedy + polite)",
         f"{done['greedy'] / wall:.1f} + {done['polite'] / wall:.1f}", f"about {capacity:.1f} in all"],
        ["polite judgments/s over the capacity", f"{kept:.1%}", ">= 45%"],
        ["polite share of completed judgments", f"{share:.1%}", "(about half: fair)"],
        *[[f"answers of {tenant} by status", ", ".join(f"{s}: {n}" for s, n in sorted(statuses[tenant].items())),
           "200 or 503 only"] for tenant in TENANTS],
    ]
    print()
    print(table(["", "measured", "target"], rows))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return all(ok for _, ok in checks)


def _seed(db: Path) -> dict[str, str]:
    """Each tenant's user ``u1`` with two preferences (no judge: no update job), and its token."""
    from personae.data import PreferenceRecord, Turn
    from personae.store import PersonaStore

    with PersonaStore(db, background=False) as root:
        for tenant in TENANTS:
            root.for_tenant(tenant).add_preferences("u1", [
                PreferenceRecord([Turn("user", f"question {i}")], f"short {i}", f"a much longer answer {i}",
                                 record_id=f"r{i}") for i in range(2)])
    return {tenant: create_token(db, tenant) for tenant in TENANTS}


def _serve_lm(latency: float, conn: Any) -> None:
    with simulated_server(latency) as lm:
        conn.send(lm.api_base)
        conn.recv()   # until the benchmark is done


@contextmanager
def _lm_process(latency: float) -> Iterator[str]:
    """The simulated LM in a process of its own (its threads do not share this process's GIL
    with the client): its ``api_base``."""
    import multiprocessing

    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve_lm, args=(latency, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(30):
            raise RuntimeError("the simulated LM did not start")
        yield str(ours.recv())
    finally:
        ours.send("stop")
        process.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-latency", type=float, default=0.4, help="seconds the simulated LM takes (default 0.4)")
    parser.add_argument("--slots", type=int, default=8, help="--judge-concurrency (default 8)")
    parser.add_argument("--queue", type=int, default=2, help="--judge-queue, per tenant (default 2)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the overload lasts (default 20)")
    parser.add_argument("--unloaded", type=int, default=20, help="judgments one at a time first (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="overload-bench-") as folder, _lm_process(args.lm_latency) as api_base:
        db = Path(folder) / "overload.db"
        tokens = _seed(db)
        flags = ["--judge", "openai/simulated", "--api-base", api_base, "--api-key", "none", "--no-cache",
                 "--lm-retries", "0", "--max-attempts", "1", "--model", "none", "--update-workers", "1",
                 "--judge-concurrency", str(args.slots), "--judge-queue", str(args.queue),
                 "--judge-queue-timeout", "2", "--threads", str(max(8, 2 * args.slots))]
        with serve_api(db, flags) as service:
            print(f"serve-api on {service.url}: --judge-concurrency {args.slots} --judge-queue {args.queue}, "
                  f"simulated LM {args.lm_latency * 1000:.0f} ms", flush=True)
            held = asyncio.run(_measure(service.url, service.process.pid, tokens, args))
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
