"""Does personae's client keep an OpenAI-compatible LM server busy?

A simulated OpenAI-compatible server runs in its own process on 127.0.0.1 (aiohttp, uvloop when
importable): every ``POST /v1/chat/completions`` waits ``--latency`` seconds, at most ``--slots``
requests at a time, then answers every output field DSPy asked for. Against it the script prints:

1. **raw**: what a bare asyncio client does (one aiohttp session, ``TCPConnector(limit=C)``, the
   same judge request posted again and again, each answer parsed): the rate the server allows
   at concurrency C, the yardstick for everything below.
2. **judge** and **infer**: ``judge_records`` (two judgments a PRISM pair, one LM call each) and
   ``infer_personas`` (two calls a pair) through personae's Python API, each timed alone (no
   imports, no Ray start-up, a short warm-up run first), in four modes: ``litellm threads``
   (``engine="litellm"``, what personae used before), ``http threads`` (personae's
   ``HTTPEngine``, which ``engine="auto"`` picks for ``openai/NAME`` with an ``api_base``),
   ``lm15 threads`` (DSPy's native engine, the alternative) and ``http ray (2 workers)`` (one
   ``RayExecutor`` shared by all Ray rows). Per row: items and LM requests a second, the share of
   the raw client's rate at the same concurrency, and client CPU per request (the driver's, plus
   the Ray workers' processes for Ray rows; Ray's own daemons are not counted).
3. **fit**: ``fit_users`` on the PRISM users with the most pairs (``--fit-users``), ``http
   threads``, 8 users at a time: LM calls, tokens and client CPU per user.
4. **sizing**, on paper, from the fit figures: hours to fit PersonalRewardBench's 854 users and a
   million users on servers of ``--server-rps`` requests a second, the concurrency that keeps
   such a server busy, and the Ray workers whose CPU that takes.

It also prints the time of ``import litellm`` and of ``import dspy``, each in a fresh interpreter:
personae's own engine never imports LiteLLM.

    python benchmarks/throughput.py                        # everything, about 5 minutes on 2 cores
    python benchmarks/throughput.py --parts raw,judge --modes http,ray
    python benchmarks/throughput.py --smoke                # every part and mode, tiny: checks the script

Targets: ``http threads`` judges at concurrency 32 at no less than 0.9 of the raw client's
request rate; ``http ray (2 workers)`` at concurrency 64 at no less than 0.8 of it. (The
targets are checked at the smallest and the largest ``--concurrency``: 32 and 64 by default.)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
PRISM = ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"
BENCH_USERS = 854  # PersonalRewardBench
# In this order: once LiteLLM (or lm15's model catalogue) is loaded, its background work slows every
# later row of the process (HTTPEngine on threads at concurrency 64: 100 requests/s after the LiteLLM
# rows, 132 without them, in one measurement), so the engines that do not load it go first.
MODES = {"http": "http threads", "ray": "http ray (2 workers)", "lm15": "lm15 threads", "litellm": "litellm threads"}
PARTS = ("raw", "judge", "infer", "fit", "sizing")
RAY_WORKERS = 2
WORKER_USE = 0.8  # a Ray worker's core counted at 80% busy
HTTP_TARGET, RAY_TARGET = 0.9, 0.8
PERSONA = "A practical person who wants short, concrete answers without preamble or filler."


# -- the simulated server (its own process) ------------------------------------------------------

def fields(body: dict[str, Any]) -> list[str]:
    """The output field names DSPy asked for, read from its system message."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    section = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    return re.findall(r"`(\w+)`", section)


def answer(body: dict[str, Any]) -> str:
    """A JSON object with every output field asked for; the verdict follows a hash of the last user message."""
    last = next((str(m.get("content", "")) for m in reversed(body["messages"]) if m.get("role") == "user"), "")
    first = hashlib.sha256(last.encode()).digest()[0] % 2 == 0
    values: dict[str, str] = {}
    for name in fields(body):
        if name == "preferred":
            values[name] = "A" if first else "B"
        elif name == "reasoning":
            values[name] = "The first response answers the question more directly."
        elif "persona" in name:
            values[name] = PERSONA
        else:
            values[name] = "A short plain answer."
    return json.dumps(values)


def serve(port: int, latency: float, slots: int) -> None:
    from aiohttp import web

    served = 0

    async def main() -> None:
        gate = asyncio.Semaphore(slots)

        async def chat(request: web.Request) -> web.Response:
            nonlocal served
            try:
                body = await request.json()
                messages = body["messages"]
                content = answer(body)
            except (ValueError, KeyError, TypeError) as exc:
                return web.json_response({"error": {"message": f"bad request: {exc}", "type": "invalid_request"}},
                                         status=400)
            async with gate:
                await asyncio.sleep(latency)
            served += 1
            prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
            completion = len(content.split())
            return web.json_response({
                "id": f"sim-{served}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "sim"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            })

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


class Server:
    """The simulated server as a child process; ``close`` ends it."""

    def __init__(self, latency: float, slots: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.latency, self.slots = latency, slots
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(self.port),
                                      "--latency", str(latency), "--slots", str(slots)])
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the simulated server exited with status {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the simulated server did not accept connections within {timeout:g} s") from exc
                time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- measuring ------------------------------------------------------------------------------------

@dataclass
class Row:
    mode: str
    items: int
    concurrency: int
    seconds: float
    requests: int
    cpu_s: float
    failed: int

    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def cells(self, raw: dict[int, float]) -> list[object]:
        base = raw.get(self.concurrency)
        return [self.mode, self.items, self.concurrency, f"{self.seconds:.2f}", f"{self.items / self.seconds:.1f}",
                f"{self.rps():.1f}", f"{self.rps() / base:.2f}" if base else "n/a",
                f"{1000 * self.cpu_s / max(self.requests, 1):.2f}"]


class CPUClock:
    """This process's CPU time, plus that of other processes (Ray workers) by pid."""

    def __init__(self, pids: Sequence[int] = ()) -> None:
        import psutil

        self.procs = [psutil.Process(pid) for pid in pids]
        self.start = self._now()

    def _now(self) -> float:
        total = time.process_time()
        for proc in self.procs:
            try:
                times = proc.cpu_times()
            except Exception:  # a worker that died: its time is lost, the row still counts
                continue
            total += times.user + times.system
        return total

    def elapsed(self) -> float:
        return self._now() - self.start


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table: text columns left-aligned, the rest right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(headers))]
    left = [i == 0 for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if left[i] else c.rjust(w) for i, (c, w) in
                                 enumerate(zip(row, widths, strict=True))) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if not left[i] else "-" * w for i, w in enumerate(widths)) + " |"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def import_seconds(module: str, repeats: int) -> float:
    """The best of ``repeats`` times to import ``module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    best = math.inf
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def captured_body(url: str, record: Any) -> dict[str, Any]:
    """The chat body of one real judgment: one judge call through personae, read back from DSPy's history."""
    from dspy.clients.base_lm import GLOBAL_HISTORY

    from personae.lm import get_lm
    from personae.pipelines import judge_factory, judge_records

    lm = get_lm("openai/sim", api_base=url, cache=False)
    report = judge_records([record], judge_factory(), lm=lm, both_orders=False)
    if report.unscored or not GLOBAL_HISTORY:
        raise RuntimeError("the judgment used to capture a request body failed")
    entry = GLOBAL_HISTORY[-1]
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in entry["messages"]]
    body: dict[str, Any] = {"model": "sim", "messages": messages, "temperature": 0.0, "max_tokens": 1024}
    for name, value in (entry.get("kwargs") or {}).items():  # e.g. the adapter's response_format
        try:
            json.dumps(value)
        except TypeError:
            continue
        body[name] = value
    return body


def raw_row(url: str, body: dict[str, Any], requests: int, concurrency: int, warmup: int) -> Row:
    import aiohttp

    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}

    async def run() -> tuple[float, float, int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            failed = 0

            async def post() -> None:
                nonlocal failed
                async with session.post(f"{url}/chat/completions", data=data, headers=headers) as resp:
                    out = await resp.json()
                if resp.status != 200 or not out["choices"][0]["message"]["content"]:
                    failed += 1

            async def worker(queue: list[int]) -> None:
                while queue:
                    queue.pop()
                    await post()

            async def batch(n: int) -> None:
                queue = list(range(n))
                await asyncio.gather(*(worker(queue) for _ in range(min(concurrency, n))))

            await batch(warmup)
            failed = 0
            clock = CPUClock()
            started = time.perf_counter()
            await batch(requests)
            return time.perf_counter() - started, clock.elapsed(), failed

    seconds, cpu, failed = asyncio.run(run())
    return Row("raw asyncio (aiohttp)", requests, concurrency, seconds, requests, cpu, failed)


def timed(mode: str, concurrency: int, pids: Sequence[int], go: Callable[[], tuple[int, int, int]]) -> Row:
    """Time ``go() -> (items, LM requests, failed items)`` and count the CPU it took."""
    clock = CPUClock(pids)
    started = time.perf_counter()
    items, requests, failed = go()
    seconds = time.perf_counter() - started
    return Row(mode, items, concurrency, seconds, requests, clock.elapsed(), failed)


def warn_failed(row: Row, what: str) -> None:
    if row.failed:
        print(f"WARNING: {row.mode} at concurrency {row.concurrency}: {row.failed} {what} failed; "
              "this row's rates include them", flush=True)


# -- the parts -------------------------------------------------------------------------------------

def parse_list(text: str, cast: Callable[[str], Any]) -> list[Any]:
    return [cast(part.strip()) for part in text.split(",") if part.strip()]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the server's own process
    parser.add_argument("--latency", type=float, help="seconds the server takes per request (default 0.25)")
    parser.add_argument("--slots", type=int, default=64, help="requests the server works on at once (default 64)")
    parser.add_argument("--concurrency", help="client concurrencies, comma-separated (default 32,64)")
    parser.add_argument("--judge-records", type=int, help="PRISM pairs judged per row, in both orders (default 400)")
    parser.add_argument("--infer-records", type=int, help="PRISM pairs per infer-personas row (default 400)")
    parser.add_argument("--fit-users", type=int, help="PRISM users fitted, those with most pairs (default 10)")
    parser.add_argument("--server-rps", default="50,500,5000", help="server throughputs for the sizing table")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"parts to run (default {','.join(PARTS)})")
    parser.add_argument("--modes", default=",".join(MODES), help=f"client modes (default {','.join(MODES)})")
    parser.add_argument("--data", type=Path, default=PRISM, help="PRISM pairs (jsonl)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts and 0.05 s latency: checks the script")
    args = parser.parse_args(argv)
    smoke = {"latency": 0.05, "concurrency": "4,8", "judge_records": 20, "infer_records": 20, "fit_users": 2}
    full = {"latency": 0.25, "concurrency": "32,64", "judge_records": 400, "infer_records": 400, "fit_users": 10}
    for name, value in (smoke if args.smoke else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.concurrency = parse_list(args.concurrency, int)
    args.server_rps = parse_list(args.server_rps, float)
    args.parts = parse_list(args.parts, str)
    args.modes = parse_list(args.modes, str)
    for value, allowed, what in ((args.parts, PARTS, "--parts"), (args.modes, tuple(MODES), "--modes")):
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            parser.error(f"{what}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs positive numbers")
    return args


@dataclass
class Fit:
    users: int
    calls: int
    tokens: int
    cpu_s: float
    seconds: float


def run_benchmark(args: argparse.Namespace) -> None:
    smoke = args.smoke
    warm = 4 if not smoke else 2  # records of each warm-up run
    print("# personae client throughput against a simulated OpenAI-compatible server\n")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; server latency {args.latency:g} s, "
          f"{args.slots} slots (at most min(C, {args.slots}) / {args.latency:g} s requests a second at "
          f"concurrency C){'; SMOKE run: tiny counts, figures not meaningful' if smoke else ''}\n", flush=True)

    repeats = 1 if smoke else 3
    print(f"## Import time (fresh interpreter, best of {repeats})\n")
    print(table(["module", "seconds"], [[m, f"{import_seconds(m, repeats):.2f}"] for m in ("dspy", "litellm")]))
    print("\npersonae's own engine (`http`) never imports litellm; the `litellm` engine pays this on its first "
          "call.\n", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="personae-throughput-"))
    server = Server(args.latency, args.slots)
    ray_mod: Any = None
    executor: Any = None
    try:
        server.wait()
        from personae.data import load_preferences, select_users
        from personae.lm import get_lm
        from personae.pipelines import fit_users, infer_personas, judge_factory, judge_records
        from personae.runs import ThreadExecutor

        data = load_preferences(args.data)
        records = list(data.records)
        judge_set = records[:args.judge_records]
        infer_set = records[:args.infer_records]
        raw: dict[int, float] = {}
        results: dict[tuple[str, str, int], Row] = {}

        if "raw" in args.parts:
            body = captured_body(server.url, records[0])
            print("## Raw asyncio client (aiohttp, one session, the same judge request each time)\n")
            rows = []
            for c in args.concurrency:
                row = raw_row(server.url, body, 2 * len(judge_set), c, warmup=min(c, 8))
                raw[c] = row.rps()
                ceiling = min(c, args.slots) / args.latency
                rows.append([c, row.requests, f"{row.seconds:.2f}", f"{row.rps():.1f}", f"{ceiling:.1f}",
                             f"{row.rps() / ceiling:.2f}", f"{1000 * row.cpu_s / row.requests:.2f}"])
                warn_failed(row, "requests")
            print(table(["concurrency", "requests", "seconds", "requests/s", "server ceiling/s", "of ceiling",
                         "client CPU ms/request"], rows), flush=True)
            print()

        lms: dict[str, Any] = {}

        def lm_for(mode: str) -> Any:
            if mode not in lms:
                engine = {"litellm": "litellm", "lm15": "lm15"}.get(mode, "auto")
                lms[mode] = get_lm("openai/sim", api_base=server.url, cache=False, engine=engine)
            return lms[mode]

        def executor_for(mode: str, c: int) -> tuple[Any, list[int]]:
            nonlocal ray_mod, executor
            if mode != "ray":
                return ThreadExecutor(c), []
            if executor is None:
                import ray

                from personae.runs import RayExecutor

                ray_mod = ray
                ray.init(num_cpus=RAY_WORKERS, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
                executor = RayExecutor(max(args.concurrency), workers=RAY_WORKERS)
                executor.start()
            executor.concurrency = c  # in flight at once; the workers were sized for the largest
            return executor, executor.worker_pids()

        def judge(mode: str, c: int, subset: Sequence[Any]) -> tuple[int, int, int]:
            ex, _ = executor_for(mode, c)
            report = judge_records(subset, judge_factory(), lm=lm_for(mode), executor=ex)
            return report.total, report.cost.lm_calls, report.unscored

        def infer(mode: str, c: int, subset: Sequence[Any]) -> tuple[int, int, int]:
            ex, _ = executor_for(mode, c)
            out = tmp / f"infer-{mode}-{c}-{len(subset)}-{time.monotonic_ns()}.jsonl"
            report = infer_personas(subset, out, lm=lm_for(mode), executor=ex, fresh=True)
            return report.records, report.cost.lm_calls, report.failed

        for part, fn, items, what in (("judge", judge, judge_set, "judgments"),
                                      ("infer", infer, infer_set, "records")):
            if part not in args.parts:
                continue
            title = "judge" if part == "judge" else "infer-personas"
            print(f"## {title}: {len(items)} PRISM pairs "
                  f"({'both orders, 1 LM call a judgment' if part == 'judge' else '2 LM calls a pair'})\n",
                  flush=True)
            rows = []
            for mode in args.modes:
                for c in args.concurrency:
                    fn(mode, c, items[:warm])  # warm-up: connections, lazy imports, Ray payloads
                    _, pids = executor_for(mode, c)
                    row = timed(MODES[mode], c, pids, functools.partial(fn, mode, c, items))
                    results[(part, mode, c)] = row
                    warn_failed(row, what)
                    rows.append(row.cells(raw))
                    print(f"  {title} {MODES[mode]} c={c}: {row.rps():.1f} requests/s", file=sys.stderr, flush=True)
            print(table(["mode", "items", "concurrency", "seconds", "items/s", "LM requests/s", "vs raw",
                         "client CPU ms/request"], rows))
            print("\nvs raw: LM requests/s over the raw client's at the same concurrency. Client CPU: this "
                  "process's, plus the Ray workers' processes in Ray rows.\n", flush=True)

        if "judge" in args.parts:
            low, high = min(args.concurrency), max(args.concurrency)
            print("## Targets\n")
            for mode, c, target in (("http", low, HTTP_TARGET), ("ray", high, RAY_TARGET)):
                measured = results.get(("judge", mode, c))
                if measured is None or c not in raw:
                    print(f"- {MODES[mode]} judge at concurrency {c} >= {target} of raw: n/a (not measured)")
                    continue
                share = measured.rps() / raw[c]
                print(f"- {MODES[mode]} judge at concurrency {c} >= {target} of raw: {share:.2f} "
                      f"{'PASS' if share >= target else 'MISS'}")
            print(flush=True)

        fit: Fit | None = None
        if "fit" in args.parts:
            users = select_users(data, top=args.fit_users, min_pairs=4)
            lm = lm_for("http")
            clock = CPUClock()
            started = time.perf_counter()
            report = fit_users(users, tmp / "fit", lm=lm, user_concurrency=8, fresh=True)
            seconds = time.perf_counter() - started
            cpu = clock.elapsed()
            n, cost = max(len(users), 1), report.cost
            fit = Fit(len(users), cost.lm_calls, cost.total_tokens, cpu, seconds)
            pairs = sum(len(u.records) for u in users)
            print(f"## fit: {len(users)} PRISM users with the most pairs ({pairs} pairs in all), "
                  f"{MODES['http']}, 8 users at a time\n")
            print(table(["users", "fitted", "failed", "LM calls/user", "tokens/user (prompt+completion)",
                         "client CPU s/user", "client CPU ms/call", "wall s"],
                        [[len(users), len(report.fitted), len(report.failed), f"{cost.lm_calls / n:.1f}",
                          f"{cost.total_tokens / n:,.0f}", f"{cpu / n:.2f}",
                          f"{1000 * cpu / max(cost.lm_calls, 1):.2f}", f"{seconds:.1f}"]]))
            if report.failed:
                print(f"WARNING: {len(report.failed)} users failed to fit: {report.failed[:3]}")
            print(flush=True)

        if "sizing" in args.parts:
            print("## Sizing on paper\n")
            if fit is None or not fit.calls:
                print("(needs the fit part's calls and CPU per user: run with --parts fit,sizing)\n")
            else:
                per_user = fit.calls / fit.users
                cpu_per_call = fit.cpu_s / fit.calls
                rows = []
                for users_n in (BENCH_USERS, 1_000_000):
                    for rps in args.server_rps:
                        rows.append([f"{users_n:,}", f"{rps:,.0f}", f"{users_n * per_user / rps / 3600:,.3g}",
                                     f"{math.ceil(rps * args.latency):,}",
                                     f"{math.ceil(rps * cpu_per_call / WORKER_USE):,}"])
                print(table(["users", "server requests/s", "hours to fit all", "concurrency to keep it busy",
                             "Ray workers"], rows))
                print(f"\n- hours = users x {per_user:.1f} LM calls per user (measured above) / server requests/s "
                      "/ 3600: the server is the bound, given the concurrency and the workers of the next two columns.")
                print(f"- concurrency = server requests/s x {args.latency:g} s (Little's law), assuming the real "
                      "server answers in the simulated latency (--latency).")
                print(f"- Ray workers = ceil(server requests/s x {cpu_per_call * 1000:.2f} ms client CPU per call "
                      f"(measured above) / {WORKER_USE}): one worker a core, each kept {WORKER_USE:.0%} busy.\n")
    finally:
        if executor is not None:
            executor.close()
        if ray_mod is not None and ray_mod.is_initialized():
            ray_mod.shutdown()
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = options(argv)
    if args.serve is not None:
        try:
            serve(args.serve, args.latency if args.latency is not None else 0.25, args.slots)
        except KeyboardInterrupt:
            pass
        return
    started = time.perf_counter()
    run_benchmark(args)
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
