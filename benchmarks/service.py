"""The persona service over HTTP against the persona store in-process: what the HTTP layer costs.

Three parts, each printed beside what it is compared with (``--parts judge,add,memory``):

1. **judge**: ``judge`` latency (p50, p99) and throughput at concurrency 1, 16 and 64, through
   ``personae serve-api`` (a real server process on 127.0.0.1, reached by ``PersonaeClient`` over
   one pooled ``httpx.Client`` shared by the threads) and through a ``PersonaStore`` in this
   process on the same backend, the same thread count calling ``store.judge``. Two backends:
   the reward model in ``--reward-model`` (no LM at request time) and a simulated
   OpenAI-compatible LM server on 127.0.0.1 (``--lm-latency`` seconds a request; a judgment is
   two requests, one per order). Both sides judge the same PRISM pairs (texts clipped to
   ``--clip-chars``) for the same ``--users`` users, each seeded first with 3 PRISM preferences
   (written straight to the database, so no update job runs; cold start: no persona).
   Printed: HTTP throughput over in-process throughput, and p99(HTTP) - p99(in-process).
2. **add**: ``add_preferences`` the same way, reward-model backend only: each request adds one
   new preference (a unique id) to one of 256 users. Update jobs are debounced out of the way
   (``--debounce 3600`` and the same policy in-process; a user's job still falls due 30 s
   after its first add, the policy's ``max_delay_s``, so a row that ran longer would share the
   CPU with prequential judgments on one update worker).
3. **memory**: a fresh server (reward model, default debounce, one update worker, no persona
   writer) answers ``--requests-memory`` requests at concurrency 16, a fixed shuffled mix of 60%
   judge, 20% add-preference (to 500 users; their update jobs run meanwhile, a prequential
   judgment per preference), 15% GET persona and 5% generation-prompt; its resident memory
   (VmRSS in /proc/PID/status) is read before the first request and after every tenth of
   them. Every request must answer 2xx.

4. **mcp**: ``judge`` through MCP over HTTP (``/mcp`` on the same ``personae serve-api``, the
   official SDK's client calling the ``judge_drafts`` tool; one session, its calls issued from
   the threads) beside the REST route (``PersonaeClient``), at concurrency 1 and 16, on the
   simulated LM and, when ``--reward-model`` holds a model, on the reward model. Each row runs
   twice, in the order REST, MCP, MCP, REST, and the two runs of a side are averaged (what
   runs first on a warm server answers differently). Printed: MCP throughput over REST
   throughput. Target: at least 0.8 at concurrency 16.

Every server runs ``--model none`` (no persona is written) with one update worker. The
reward model judges one request at a time (one model, one lock): about 70 ms a judgment on
2 CPU cores, so that backend's rows are bound by it on both sides.

    python benchmarks/service.py                      # all three parts (about 15 minutes on 2 cores,
                                                      # 10 of them the memory part's judgments)
    python benchmarks/service.py --parts judge,add    # a few minutes
    python benchmarks/service.py --smoke              # every part, tiny: checks the script
    python benchmarks/service.py --parts mcp          # MCP against REST (a minute without a reward model)
    python benchmarks/service.py --parts judge --runtime onnx-int8   # the reward model on its int8 export

Targets: with the reward-model backend at concurrency 16, HTTP judge throughput is at least
70% of in-process, and the HTTP judge p99 at most 50 ms plus the backend's own time: each HTTP
request's latency minus the store's own time for it (the ``Server-Timing: store;dur=`` the
service sends: the store's reads and the judge, queueing for the model included), at p99 under
50 ms. The HTTP p99 against the in-process p99 is printed beside it, not as a target: on two
cores the client threads, the HTTP work and the model share the CPU, so the difference mixes
HTTP cost with a slower model. No judge or add request fails; in the memory part no request
fails and the server's RSS grows by less than 10% over the second half of the requests.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as serve-api sets it: the same backend on both sides
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import clip_record, percentiles, simulated_server, table  # noqa: E402

from personae.testing import create_token, serve_api  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"
TENANT = "bench"
CONCURRENCY = (1, 16, 64)
SEEDS = 3              # preferences per user before judging: under the policy's min_pairs, so no first fit
ADD_USERS = 256        # users the add part spreads its preferences over
QUIET = ["--model", "none", "--update-workers", "1"]            # every server: no persona writer
DEBOUNCED = ["--debounce", "3600"]                              # the judge and add parts' servers
MIX = ["judge"] * 12 + ["add"] * 4 + ["persona"] * 3 + ["prompt"]  # the memory part's requests, of 20
random.Random(0).shuffle(MIX)


@dataclass(frozen=True)
class Workload:
    """The users (seeded with ``seeds``) and the pairs (context, a, b) both sides judge."""

    users: list[str]
    seeds: dict[str, list[Any]]
    pairs: list[tuple[str, str, str]]
    records: list[Any]  # clipped PRISM preferences, the add part's texts

    def judge_args(self, i: int) -> tuple[str, str, str, str]:
        return (self.users[i % len(self.users)], *self.pairs[i % len(self.pairs)])

    def new_preference(self, i: int, key: str) -> Any:
        return replace(self.records[i % len(self.records)], record_id=f"{key}-{i}")


def workload(args: argparse.Namespace) -> Workload:
    from personae.data import load_preferences

    pairs_n = 64
    need = pairs_n + SEEDS * args.users
    records = [replace(clip_record(r, args.clip_chars), metadata={}, raw={}, profile=None, user_id=None)
               for r in load_preferences(args.data, limit=need)]
    if len(records) < need:
        raise SystemExit(f"{args.data}: {len(records)} preferences, {need} needed")
    users = [f"user{k:03d}" for k in range(args.users)]
    seeds = {u: [replace(records[pairs_n + SEEDS * k + j], record_id=f"seed-{u}-{j}") for j in range(SEEDS)]
             for k, u in enumerate(users)}
    pairs = [(r.prompt, r.chosen, r.rejected) for r in records[:pairs_n]]
    return Workload(users, seeds, pairs, records)


def _seed(db: Path, work: Workload) -> None:
    """The users' first preferences, written by a store without a judge: no update job is queued."""
    from personae.store import PersonaStore

    with PersonaStore(db, tenant=TENANT, background=False) as store:
        for user in work.users:
            if store.add_preferences(user, work.seeds[user]).job_id is not None:
                raise RuntimeError("a store without a judge queued an update job")


# -- load ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figures:
    p50: float   # ms
    p99: float   # ms
    rate: float  # requests answered per second
    failed: int
    over_p50: float = float("nan")   # ms of a request beyond the store's own time (Server-Timing), HTTP only
    over_p99: float = float("nan")


_TIMING = threading.local()   # the Server-Timing "store" duration of this thread's last answer


def _record_timing(response: Any) -> None:
    metrics = dict(part.strip().split(";dur=", 1) for value in response.headers.get_list("server-timing")
                   for part in value.split(",") if ";dur=" in part)
    _TIMING.ms = float(metrics["store"]) if "store" in metrics else None


def _store_ms() -> float | None:
    """The store's own time of this thread's last HTTP answer (None in-process)."""
    found = getattr(_TIMING, "ms", None)
    _TIMING.ms = None
    return found


def _load(fn: Callable[[int], float | None], n: int, concurrency: int, errors: Counter[str],
          offset: int = 0) -> Figures:
    """p50 and p99 ms of the calls that answered, calls per second, and failures of ``fn(i)`` for
    ``offset <= i < offset + n`` on ``concurrency`` threads; each failure is counted in ``errors``.
    When ``fn`` returns the store's own time of its request, the time beyond it is summarized too."""
    latencies: list[float] = []
    beyond: list[float] = []
    failed = [0]
    lock = threading.Lock()
    counter = iter(range(offset, offset + n))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                store_ms = fn(i)
            except Exception as exc:  # counted, and the run goes on
                with lock:
                    failed[0] += 1
                    errors[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
                continue
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if store_ms is not None:
                    beyond.append(elapsed - store_ms / 1000)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    p50, p99 = percentiles(latencies) if latencies else (float("nan"), float("nan"))
    over = percentiles(beyond) if beyond else (float("nan"), float("nan"))
    return Figures(p50, p99, len(latencies) / wall, failed[0], *over)


def _count(args: argparse.Namespace, concurrency: int) -> int:
    requests: int = args.requests
    return max(1, requests // 4) if concurrency == 1 else requests


@contextmanager
def _served(root: Path, name: str, flags: list[str], work: Workload) -> Iterator[tuple[Any, Any]]:
    """A seeded database served by ``personae serve-api FLAGS``: the process, and a client whose
    connection pool holds a connection per thread of the largest row (no retries: a failure counts)."""
    import httpx

    from personae.client import PersonaeClient

    db = root / f"{name}-http.db"
    _seed(db, work)
    token = create_token(db, TENANT)
    started = time.perf_counter()
    with serve_api(db, flags) as service:
        service.token = token   # for the MCP part's own client
        print(f"  {name}: server up in {time.perf_counter() - started:.1f} s ({service.url})", flush=True)
        limits = httpx.Limits(max_connections=max(CONCURRENCY), max_keepalive_connections=max(CONCURRENCY))
        with httpx.Client(base_url=service.url, timeout=300.0, limits=limits,
                          headers={"Authorization": f"Bearer {token}"},
                          event_hooks={"response": [_record_timing]}) as http:
            yield service, PersonaeClient(service.url, http_client=http, retries=0)


@contextmanager
def _in_process(root: Path, name: str, backend: Any, work: Workload) -> Iterator[Any]:
    """A seeded database opened in this process with the servers' update policy."""
    from personae.store import PersonaStore, UpdatePolicy

    db = root / f"{name}-local.db"
    _seed(db, work)
    with PersonaStore(db, backend=backend, tenant=TENANT, background=True,
                      policy=UpdatePolicy(debounce_s=3600.0, concurrency=1)) as store:
        yield store


def _caller(call: str, target: Any, work: Workload, key: str) -> Callable[[int], float | None]:
    """Request ``i`` of a row: a judgment, or one new preference (id ``KEY-i``) for one of many users;
    returns the store's own time of an HTTP request (its Server-Timing header)."""
    def judge(i: int) -> float | None:
        _store_ms()
        target.judge(*work.judge_args(i))
        return _store_ms()

    def add(i: int) -> float | None:
        _store_ms()
        target.add_preferences(f"adder{i % ADD_USERS:03d}", [work.new_preference(i, key)])
        return _store_ms()

    return judge if call == "judge" else add


def _rows(target: Any, calls: list[str], work: Workload, args: argparse.Namespace, side: str,
          errors: Counter[str]) -> dict[tuple[str, int], Figures]:
    """``judge`` and/or ``add`` rows on ``target`` (a PersonaeClient or a PersonaStore: the same
    methods), after one untimed judgment."""
    target.judge(*work.judge_args(0))
    out: dict[tuple[str, int], Figures] = {}
    for call in calls:
        for concurrency in args.concurrency:
            fn = _caller(call, target, work, f"{side}-c{concurrency}")
            figures = out[call, concurrency] = _load(fn, _count(args, concurrency), concurrency, errors)
            beyond = "" if figures.over_p99 != figures.over_p99 else \
                f" (beyond the store's own time: p50 {figures.over_p50:.1f} ms, p99 {figures.over_p99:.1f} ms)"
            print(f"    {side} {call} c{concurrency}: p50 {figures.p50:.1f} ms, p99 {figures.p99:.1f} ms, "
                  f"{figures.rate:,.1f}/s, {figures.failed} failed{beyond}", flush=True)
    return out


def _compare(name: str, call: str, http: dict[tuple[str, int], Figures],
             local: dict[tuple[str, int], Figures]) -> list[list[object]]:
    rows: list[list[object]] = []
    for concurrency in sorted({c for _, c in http}):
        h, p = http[call, concurrency], local[call, concurrency]
        rows.append([name, concurrency, f"{h.p50:.1f}", f"{h.p99:.1f}", f"{h.rate:,.1f}", f"{p.p50:.1f}",
                     f"{p.p99:.1f}", f"{p.rate:,.1f}", f"{h.rate / p.rate:.2f}" if p.rate else "n/a",
                     f"{h.p99 - p.p99:+.1f}", f"{h.over_p50:.1f}", f"{h.over_p99:.1f}", f"{h.failed} / {p.failed}"])
    return rows


HEADER = ["backend", "threads", "HTTP p50 ms", "HTTP p99 ms", "HTTP /s", "in-process p50 ms", "in-process p99 ms",
          "in-process /s", "HTTP/in-process /s", "p99 HTTP - in-process ms", "HTTP beyond store p50 ms",
          "HTTP beyond store p99 ms", "failed HTTP / in-process"]


def _verdict(text: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}: {text} ({detail})")
    return ok


# -- 1. and 2. judge and add_preferences, over HTTP and in-process -------------------------------------
def _reward_flags(args: argparse.Namespace) -> list[str]:
    """``serve-api`` flags of a reward-model server: the model, its batching, threads and runtime."""
    return ["--judge", f"reward-model:{args.reward_model}", "--max-batch", str(args.max_batch),
            *(["--torch-threads", str(args.torch_threads)] if args.torch_threads else []),
            "--runtime", args.runtime, *QUIET, *DEBOUNCED]


def judge_over_http(args: argparse.Namespace, root: Path, work: Workload) -> dict[int, Figures]:
    """The reward model's judge rows through ``serve-api`` alone, by thread count (the rows
    ``benchmarks/scoring.py`` sets side by side for each runtime)."""
    errors: Counter[str] = Counter()
    with _served(root, f"reward-model-{args.runtime}", _reward_flags(args), work) as (_, client):
        rows = _rows(client, ["judge"], work, args, f"HTTP {args.runtime}", errors)
    _errors(errors)
    return {concurrency: figures for (_, concurrency), figures in rows.items()}


def part_calls(args: argparse.Namespace, root: Path, work: Workload, parts: set[str]) -> bool:
    import dspy

    from personae.lm import default_adapter, get_lm
    from personae.store import LLMJudgeBackend, RewardModelBackend

    calls: list[str] = [c for c in ("judge", "add") if c in parts]
    print(f"\n## measuring {' and '.join(calls)} ({args.requests} requests a row at 16 and 64 threads, "
          f"{_count(args, 1)} at 1; {len(work.users)} users, {len(work.pairs)} pairs)\n", flush=True)
    errors: Counter[str] = Counter()
    judge_rows: list[list[object]] = []
    add_rows: list[list[object]] = []
    reward: dict[str, dict[tuple[str, int], Figures]] = {}
    judged: list[dict[tuple[str, int], Figures]] = []   # every side's judge rows, for the failure count
    with _served(root, "reward-model", _reward_flags(args), work) as (_, client):
        reward["http"] = _rows(client, calls, work, args, "HTTP", errors)
    with _in_process(root, "reward-model", RewardModelBackend(args.reward_model, max_batch=args.max_batch,
                                                            threads=args.torch_threads, runtime=args.runtime),
                     work) as store:
        reward["local"] = _rows(store, calls, work, args, "in-process", errors)
    if "judge" in calls:
        judged += [reward["http"], reward["local"]]
        judge_rows += _compare("reward model", "judge", reward["http"], reward["local"])
    if "add" in calls:
        add_rows += _compare("reward model", "add", reward["http"], reward["local"])
    if "judge" in calls:
        with simulated_server(args.lm_latency) as stub:
            flags = ["--judge", "openai/simulated", "--api-base", stub.api_base, "--api-key", "none", "--no-cache"]
            with _served(root, "simulated-lm", [*flags, *QUIET, *DEBOUNCED], work) as (_, client):
                http = _rows(client, ["judge"], work, args, "HTTP", errors)
            with dspy.context(adapter=default_adapter()):
                backend = LLMJudgeBackend(get_lm("openai/simulated", api_base=stub.api_base, api_key="none",
                                                 cache=False))
                with _in_process(root, "simulated-lm", backend, work) as store:
                    local = _rows(store, ["judge"], work, args, "in-process", errors)
        judged += [http, local]
        judge_rows += _compare(f"simulated LM ({args.lm_latency * 1000:.0f} ms)", "judge", http, local)

    held = True
    if "judge" in calls:
        print("\n## 1. judge: HTTP (personae serve-api + PersonaeClient) against the store in-process\n")
        print(table(HEADER, judge_rows))
        print()
        h, p = reward["http"]["judge", 16], reward["local"]["judge", 16]
        ratio = h.rate / p.rate if p.rate else 0.0
        held &= _verdict("reward model, 16 threads: HTTP judge throughput >= 70% of in-process", ratio >= 0.7,
                         f"{ratio:.0%}: {h.rate:,.1f}/s against {p.rate:,.1f}/s")
        held &= _verdict("reward model, 16 threads: HTTP judge p99 < 50 ms + the backend's own time",
                         h.over_p99 < 50, f"p99 of each request's time beyond the store's own (its Server-Timing): "
                                          f"{h.over_p99:.1f} ms")
        print(f"(for comparison, not a target: HTTP p99 {h.p99:.1f} ms against in-process p99 {p.p99:.1f} ms, "
              f"{h.p99 - p.p99:+.1f} ms; both sides share these 2 cores with the model, so every "
              f"millisecond of HTTP work also slows the model's batches)")
        failed = sum(f.failed for side in judged for (call, _), f in side.items() if call == "judge")
        held &= _verdict("no judge request failed", failed == 0, f"{failed} failed")
    if "add" in calls:
        print(f"\n## 2. add_preferences (one new preference a request, {ADD_USERS} users): HTTP against "
              f"the store in-process\n")
        print(table(HEADER, add_rows))
        print()
        failed = sum(f.failed for side in reward.values() for (call, _), f in side.items() if call == "add")
        held &= _verdict("no add-preference request failed", failed == 0, f"{failed} failed")
    _errors(errors)
    return held


# -- 4. MCP over HTTP against the REST route ----------------------------------------------------------
class _McpCaller:
    """One MCP session over ``/mcp`` (the official SDK's client) on an event loop of its own, so
    threads can issue ``judge_drafts`` calls through it as they issue REST calls. The session is
    opened and closed by one task on that loop (the SDK's cancel scopes ask for it)."""

    def __init__(self, url: str, token: str) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: Any = None
        self.ready = threading.Event()
        self.stop: Any = None
        self.session = asyncio.run_coroutine_threadsafe(self._session(url, token), self.loop)
        if not self.ready.wait(60):
            raise RuntimeError(f"no MCP session with {url}/mcp/: {self.session.exception(1)}")

    async def _session(self, url: str, token: str) -> None:
        import asyncio

        import httpx2
        from mcp.client.client import Client
        from mcp.client.streamable_http import streamable_http_client

        self.stop = asyncio.Event()
        limits = httpx2.Limits(max_connections=max(CONCURRENCY), max_keepalive_connections=max(CONCURRENCY))
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=300.0,
                                      limits=limits) as http, \
                Client(streamable_http_client(f"{url}/mcp/", http_client=http)) as client:
            self.client = client
            self.ready.set()
            await self.stop.wait()

    def judge(self, user_id: str, prompt: str, a: str, b: str) -> None:
        import asyncio

        call = self.client.call_tool("judge_drafts", {"user_id": user_id, "prompt": prompt, "response_a": a,
                                                      "response_b": b})
        result = asyncio.run_coroutine_threadsafe(call, self.loop).result()
        if result.is_error:
            raise RuntimeError(result.content[0].text if result.content else "tool error")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.session.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def part_mcp(args: argparse.Namespace, root: Path, work: Workload) -> bool:
    """``judge`` through ``/mcp`` and through ``/v1`` of the same server, at concurrency 1 and 16."""
    backends: list[tuple[str, list[str]]] = []
    with simulated_server(args.lm_latency) as stub:
        backends.append((f"simulated LM ({args.lm_latency * 1000:.0f} ms)",
                         ["--judge", "openai/simulated", "--api-base", stub.api_base, "--api-key", "none",
                          "--no-cache"]))
        if (Path(args.reward_model) / "personae_reward.json").exists():
            backends.append(("reward model", ["--judge", f"reward-model:{args.reward_model}",
                                              "--max-batch", str(args.max_batch)]))
        print(f"\n## measuring judge over MCP and REST ({args.requests} requests a row at 16 threads, "
              f"{_count(args, 1)} at 1)\n", flush=True)
        errors: Counter[str] = Counter()
        rows: list[list[object]] = []
        held = True
        for name, flags in backends:
            with _served(root, f"mcp-{len(rows)}", [*flags, *QUIET, *DEBOUNCED], work) as (service, client):
                mcp = _McpCaller(service.url, service.token)
                try:
                    mcp.judge(*work.judge_args(0))
                    client.judge(*work.judge_args(0))
                    figures: dict[tuple[str, int], Figures] = {}
                    targets = {"REST": client, "MCP": mcp}
                    for concurrency in (1, 16):
                        runs: dict[str, list[Figures]] = {"REST": [], "MCP": []}
                        for side in ("REST", "MCP", "MCP", "REST"):   # ABBA: neither side always goes first
                            def call(i: int, target: Any = targets[side]) -> None:
                                target.judge(*work.judge_args(i))
                            f = _load(call, _count(args, concurrency), concurrency, errors)
                            runs[side].append(f)
                            print(f"    {name} {side} c{concurrency}: p50 {f.p50:.1f} ms, p99 {f.p99:.1f} ms, "
                                  f"{f.rate:,.1f}/s, {f.failed} failed", flush=True)
                        for side, pair in runs.items():   # the two runs of a side, averaged
                            figures[side, concurrency] = Figures(
                                statistics.fmean(f.p50 for f in pair), statistics.fmean(f.p99 for f in pair),
                                statistics.fmean(f.rate for f in pair), sum(f.failed for f in pair))
                finally:
                    mcp.close()
            for concurrency in (1, 16):
                r, m = figures["REST", concurrency], figures["MCP", concurrency]
                rows.append([name, concurrency, f"{r.p50:.1f}", f"{r.p99:.1f}", f"{r.rate:,.1f}", f"{m.p50:.1f}",
                             f"{m.p99:.1f}", f"{m.rate:,.1f}", f"{m.rate / r.rate:.2f}" if r.rate else "n/a",
                             f"{r.failed} / {m.failed}"])
            ratio = figures["MCP", 16].rate / figures["REST", 16].rate if figures["REST", 16].rate else 0.0
            held &= _verdict(f"{name}, 16 threads: MCP judge throughput >= 0.8 of REST", ratio >= 0.8,
                             f"{ratio:.2f}")
        print("\n## 4. judge: MCP over HTTP (/mcp) against REST (/v1), the same server\n")
        print(table(["backend", "threads", "REST p50 ms", "REST p99 ms", "REST /s", "MCP p50 ms", "MCP p99 ms",
                     "MCP /s", "MCP/REST /s", "failed REST / MCP"], rows))
        failed = sum(int(str(row[-1]).split(" / ")[0]) + int(str(row[-1]).split(" / ")[1]) for row in rows)
        held &= _verdict("no judge request failed", failed == 0, f"{failed} failed")
        _errors(errors)
    return held


def _errors(errors: Counter[str]) -> None:
    if errors:
        print("failures:")
        for text, n in errors.most_common(10):
            print(f"  {n} x {text}")


# -- 3. the server's memory under a mixed load ---------------------------------------------------------
def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def part_memory(args: argparse.Namespace, root: Path, work: Workload) -> bool:
    n = args.requests_memory
    print(f"\n## 3. server memory: {n} requests at 16 threads, reward-model backend (60% judge, 20% "
          f"add-preference, 15% GET persona, 5% generation-prompt)\n", flush=True)
    errors: Counter[str] = Counter()
    kinds = Counter(MIX[i % len(MIX)] for i in range(n))
    with _served(root, "memory", ["--judge", f"reward-model:{args.reward_model}", "--max-batch",
                                  str(args.max_batch),
                                  *(["--torch-threads", str(args.torch_threads)] if args.torch_threads else []),
                                  *QUIET], work) \
            as (service, client):
        pid = service.process.pid

        def request(i: int) -> None:
            kind = MIX[i % len(MIX)]
            if kind == "judge":
                client.judge(*work.judge_args(i))
            elif kind == "add":
                client.add_preferences(f"mem{i % 500:03d}", [work.new_preference(i, "memory")])
            elif kind == "persona":
                client.persona(work.users[i % len(work.users)])
            else:
                client.generation_messages(work.users[i % len(work.users)])

        samples = [(0, _rss_mib(pid))]
        rows: list[list[object]] = [["0%", 0, f"{samples[0][1]:.0f}", "", 0]]
        done = 0
        for tenth in range(1, 11):
            upto = n * tenth // 10
            figures = _load(request, upto - done, 16, errors, offset=done)
            done = upto
            samples.append((done, _rss_mib(pid)))
            rows.append([f"{tenth * 10}%", done, f"{samples[-1][1]:.0f}", f"{figures.rate:,.1f}",
                         sum(errors.values())])
            print("  " + " | ".join(map(str, rows[-1])), flush=True)
        if service.process.poll() is not None:
            errors[f"the server exited with {service.process.returncode}"] += 1
    print()
    print(table(["done", "requests", "server RSS MiB", "req/s in the tenth", "failed so far"], rows))
    start, middle, end = samples[0][1], samples[5][1], samples[-1][1]
    growth = (end - middle) / middle
    failed = sum(errors.values())
    print(f"\nrequests: {dict(sorted(kinds.items()))}; RSS {start:.0f} MiB at start, {middle:.0f} MiB at 50%, "
          f"{end:.0f} MiB at the end\n")
    held = _verdict("no request failed", failed == 0, f"{failed} of {n} failed")
    held &= _verdict("server RSS grows < 10% over the second half", growth < 0.10,
                     f"{growth:+.1%}: {middle:.0f} -> {end:.0f} MiB")
    _errors(errors)
    return held


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (``--smoke`` applied)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--parts", default="judge,add,memory")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="the reward model's torch CPU threads, on both sides (default torch's: all cores)")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="the reward model's largest combined batch, on both sides (default 8, the backend's)")
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnx", "onnx-int8"),
                        help="the reward model's runtime, on both sides (onnx, onnx-int8: its export by "
                             "'personae distill export DIR --onnx --int8')")
    parser.add_argument("--concurrency", default="1,16,64",
                        help="threads of the judge and add rows (comma list; default 1,16,64)")
    parser.add_argument("--reward-model", default=str(ROOT / "runs" / "store_bench" / "reward_model"),
                        help="a PersonalizedRewardModel folder (default runs/store_bench/reward_model)")
    parser.add_argument("--requests", type=int, default=400,
                        help="requests per row at 16 and 64 threads; a quarter of them at 1 (default 400)")
    parser.add_argument("--requests-memory", type=int, default=10000, help="requests of the memory part")
    parser.add_argument("--users", type=int, default=32, help="seeded users the judgments are for (default 32)")
    parser.add_argument("--lm-latency", type=float, default=0.02, help="seconds per simulated LM request")
    parser.add_argument("--clip-chars", type=int, default=300, help="clip every text to this many characters")
    parser.add_argument("--out", default=None, help="folder for the databases (default: a temporary one)")
    parser.add_argument("--smoke", action="store_true", help="every part at a tiny size")
    args = parser.parse_args(argv)
    args.concurrency = tuple(int(c) for c in args.concurrency.split(","))
    if args.smoke:
        args.requests, args.requests_memory, args.users = 16, 100, 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = set(args.parts.split(","))
    if parts - {"mcp"} and not (Path(args.reward_model) / "personae_reward.json").exists():
        raise SystemExit(f"{args.reward_model}: no reward model (train one with benchmarks/store.py or "
                         "'personae distill reward-model')")
    work = workload(args)
    held = []
    with tempfile.TemporaryDirectory(prefix="service-bench-") as tmp:
        if args.out:  # kept: a fresh folder in it for this run's databases
            Path(args.out).mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="service-bench-", dir=args.out)) if args.out else Path(tmp)
        if parts & {"judge", "add"}:
            held.append(part_calls(args, root, work, parts))
        if "memory" in parts:
            held.append(part_memory(args, root, work))
        if "mcp" in parts:
            held.append(part_mcp(args, root, work))
    return 0 if all(held) else 1


if __name__ == "__main__":
    sys.exit(main())
