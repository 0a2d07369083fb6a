"""The persona store: what updates cost, how well stored personas predict, how fast it answers.

Three parts, each printed beside what it is compared with (``--parts cost,prequential,latency``):

1. **cost**: for PRISM users, a store fits a first persona on the first ``--start`` pairs, then
   takes ``--batch`` new pairs at a time for ``--steps`` steps, each learned by an incremental
   update (the policy's refit triggers are turned off). After each step the same history is
   refitted from scratch with SynthesizeMe's default preset, as a store without incremental
   updates would. Both on the embedded SmolLM2 model in-process, without the request cache, so
   every call reaches the model. Printed: LM calls and tokens per new preference of each, and
   the prequential judgments' calls (made by both kinds of store alike) apart.
2. **prequential**: PRISM users' histories replayed in order through a store with the
   reward-model backend: each pair is judged by the persona current when it arrives, then
   learned from (personas written by the embedded model). Beside it, on the same pairs in the
   same run: the reward model without persona, and with the user's PRISM profile.
3. **latency**: ``add_preferences`` and ``judge`` latency (p50, p99) and throughput at
   concurrency 1 and 16, on SQLite and on PostgreSQL (a server the script starts), with the
   reward-model backend and with a simulated LM server on 127.0.0.1 (``--lm-latency`` seconds a
   request); ``judge`` through the store against the backend's judge called directly with the
   same fitted judge; and 50 concurrent writers, counted for lost or doubled preferences.

The reward model is the one in ``--reward-model``, else one trained here (all-MiniLM-L6-v2 on
the PRISM pairs of users the replay does not use, ``--rm-steps`` steps) and kept in ``--out``.

    python benchmarks/store.py                        # all three parts (46 minutes on 2 cores, 13 of them
                                                      # training the reward model, which later runs reuse)
    python benchmarks/store.py --parts latency        # a few minutes
    python benchmarks/store.py --smoke                # every part, tiny: checks the script

Targets: an incremental update costs at most a quarter of a full refit's LM calls per new
preference; ``judge`` through the store adds at most 5 ms (p50) over the judge called
directly; 50 concurrent writers lose no preference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import clip_record, percentiles, simulated_server, table  # noqa: E402
from reward_model import compact_profile  # noqa: E402  (the PRISM profile, shortened as that benchmark does)

DATA = ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"


def _users(args: argparse.Namespace, need: int) -> list[Any]:
    from personae.data import load_preferences

    return [h for h in load_preferences(args.data).by_user().values() if len(h.records) >= need]


def _wilson(right: int, n: int) -> str:
    from personae.evaluation import wilson_interval

    interval = wilson_interval(right, n)
    if interval is None:
        return "n/a"
    return f"{right / n:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"


def _embedded_lm() -> Any:
    from personae.lm import get_lm

    return get_lm("local", cache=False)


# -- 1. incremental update against a full refit -----------------------------------------------------
def part_cost(args: argparse.Namespace, root: Path) -> bool:
    import dspy

    from personae.lm import CostMeter, default_adapter
    from personae.optimizers import SynthesizeMe
    from personae.store import PersonaStore, UpdatePolicy

    need = args.start + args.steps * args.batch
    users = _users(args, need)[: args.users]
    print(f"\n## 1. LM calls per new preference: incremental update against a full refit "
          f"({len(users)} users, first fit on {args.start} pairs, then {args.steps} steps of {args.batch})\n",
          flush=True)
    lm = _embedded_lm()
    policy = UpdatePolicy(debounce_s=0.0, refit_every=10**6, min_judged=10**6)
    rows, totals = [], {"inc": [0, 0], "refit": [0, 0], "preq": [0, 0], "new": 0}
    with dspy.context(adapter=default_adapter()), \
            PersonaStore(root / "cost.db", lm=lm, policy=policy, background=False) as store:
        for user in users:
            records = [clip_record(r, args.clip_chars) for r in user.records[:need]]
            store.add_preferences(user.user_id, records[: args.start])
            store.process_jobs()
            for step in range(args.steps):
                upto = args.start + (step + 1) * args.batch
                job = store.add_preferences(user.user_id, records[upto - args.batch: upto]).job_id
                store.process_jobs()
                result = store.job(job).result if job else None
                if not result or "cost" not in result:
                    print(f"  {user.user_id} step {step + 1}: no update ({result})", flush=True)
                    continue
                inc, preq = result["cost"], result.get("prequential", {}).get("cost", {})
                meter = CostMeter()
                with meter.track():
                    SynthesizeMe("default", fractions=policy.fractions).fit(records[:upto], lm=lm,
                                                                            user_id=user.user_id,
                                                                            require_validation=False)
                refit = meter.cost
                rows.append([user.user_id[:14], upto, result["action"], f"{inc['lm_calls'] / args.batch:.2f}",
                             f"{inc['total_tokens'] / args.batch:,.0f}", f"{refit.lm_calls / args.batch:.2f}",
                             f"{refit.total_tokens / args.batch:,.0f}",
                             f"{inc['lm_calls'] / max(refit.lm_calls, 1):.2f}",
                             f"{preq.get('lm_calls', 0) / args.batch:.2f}"])
                print("  " + " | ".join(map(str, rows[-1])), flush=True)
                totals["inc"][0] += inc["lm_calls"]
                totals["inc"][1] += inc["total_tokens"]
                totals["refit"][0] += refit.lm_calls
                totals["refit"][1] += refit.total_tokens
                totals["preq"][0] += preq.get("lm_calls", 0)
                totals["preq"][1] += preq.get("total_tokens", 0)
                totals["new"] += args.batch
    print()
    print(table(["user", "pairs", "update", "incr calls/pref", "incr tokens/pref", "refit calls/pref",
                  "refit tokens/pref", "calls ratio", "prequential calls/pref"], rows))
    new = max(totals["new"], 1)
    ratio = totals["inc"][0] / max(totals["refit"][0], 1)
    print(f"\nall steps ({totals['new']} new preferences): incremental {totals['inc'][0] / new:.2f} calls, "
          f"{totals['inc'][1] / new:,.0f} tokens per new preference; full refit {totals['refit'][0] / new:.2f} "
          f"calls, {totals['refit'][1] / new:,.0f} tokens; ratio {ratio:.2f} calls, "
          f"{totals['inc'][1] / max(totals['refit'][1], 1):.2f} tokens. Prequential judgments, made by either "
          f"store: {totals['preq'][0] / new:.2f} calls, {totals['preq'][1] / new:,.0f} tokens per new preference.")
    met = totals["new"] > 0 and ratio <= 0.25
    print(f"target: incremental <= 0.25 of a refit's calls per new preference: {'met' if met else 'NOT met'} "
          f"({ratio:.2f})")
    return met


# -- the reward model ------------------------------------------------------------------------------
def reward_model(args: argparse.Namespace, root: Path, replayed: set[str]) -> Any:
    from personae.distill import PersonalizedRewardModel, RewardModelConfig, train_reward_model
    from personae.store import RewardModelBackend

    folder = Path(args.reward_model) if args.reward_model else Path(args.out) / "reward_model"
    if not (folder / "personae_reward.json").exists():
        from personae.data import load_preferences

        train = [r for r in load_preferences(args.data) if r.user_id not in replayed]
        config = RewardModelConfig(max_steps=args.rm_steps, device="cpu")
        print(f"training a reward model on PRISM pairs of users outside the replay ({len(train)} pairs, "
              f"{args.rm_steps} steps) ...", flush=True)
        training = train_reward_model(train, config, out=folder,
                                      personas={u: compact_profile(p) for u, p in _profiles(args).items()})
        print(f"  trained in {training.seconds:.0f} s -> {folder}", flush=True)
    model = PersonalizedRewardModel.load(folder, device="cpu")
    return RewardModelBackend(model)


def _profiles(args: argparse.Namespace) -> dict[str, str]:
    from personae.data import load_preferences

    return {h.user_id: h.profile or "" for h in load_preferences(args.data).by_user().values()}


# -- 2. prequential accuracy of stored personas -----------------------------------------------------
def part_prequential(args: argparse.Namespace, root: Path, backend: Any, users: list[Any]) -> bool:
    import dspy

    from personae.lm import default_adapter
    from personae.store import PersonaStore, UpdatePolicy

    print(f"\n## 2. Prequential accuracy, reward-model backend, {len(users)} PRISM histories replayed in order "
          f"({args.replay_batch} pairs per add)\n", flush=True)
    profiles = _profiles(args)
    counts = {"no persona": [0, 0], "PRISM profile": [0, 0], "store persona": [0, 0], "store, before 1st fit": [0, 0],
              "store, with a persona": [0, 0]}
    lm = _embedded_lm()
    started = time.perf_counter()
    with dspy.context(adapter=default_adapter()), \
            PersonaStore(root / "prequential.db", lm=lm, backend=backend,
                         policy=UpdatePolicy(debounce_s=0.0), background=False) as store:
        for user in users:
            records = [clip_record(r, args.clip_chars) for r in user.records[: args.replay_pairs]]
            for start in range(0, len(records), args.replay_batch):
                store.add_preferences(user.user_id, records[start:start + args.replay_batch])
                store.process_jobs()
            for record in records:
                profile = compact_profile(profiles[user.user_id])
                for name, persona in (("no persona", ""), ("PRISM profile", profile)):
                    chosen, rejected = backend.model.score_batch([(persona, record.prompt, record.chosen),
                                                                  (persona, record.prompt, record.rejected)])
                    counts[name][0] += chosen > rejected
                    counts[name][1] += 1
            import sqlalchemy as sa

            engine = sa.create_engine(f"sqlite:///{root / 'prequential.db'}")
            try:
                with engine.connect() as conn:
                    judged = conn.execute(sa.text("select version, correct from judgments where user_id = :u"),
                                          {"u": user.user_id}).all()
            finally:
                engine.dispose()
            for version, correct in judged:
                for name in ("store persona", "store, before 1st fit" if version == 0 else "store, with a persona"):
                    counts[name][0] += bool(correct)
                    counts[name][1] += 1
            state = store.persona(user.user_id)
            print(f"  {user.user_id[:14]}: {len(records)} pairs, version {state.version}, prequential "
                  f"{state.prequential_accuracy}, persona: {state.persona[:90]!r}", flush=True)
    print()
    print(table(["judge (same pairs, same order)", "pairs", "accuracy [95% Wilson]"],
                 [[name, n, _wilson(right, n)] for name, (right, n) in counts.items()]))
    print(f"\n{time.perf_counter() - started:.0f} s, persona updates on the embedded model")
    return True


# -- 3. latency and throughput ----------------------------------------------------------------------
def _load(fn: Callable[[int], None], n: int, concurrency: int) -> tuple[float, float, float]:
    """p50 ms, p99 ms, operations per second of ``fn(i)`` for i < n on ``concurrency`` threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            fn(i)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return p50, p99, n / wall


def part_latency(args: argparse.Namespace, root: Path, rm_backend: Any) -> bool:
    import dspy

    from personae.data import PreferenceRecord, Turn
    from personae.lm import default_adapter, get_lm
    from personae.optimizers import PersonalizedJudge
    from personae.store import LLMJudgeBackend, PersonaStore, UpdatePolicy
    from personae.testing import PostgresServer, PostgresUnavailable

    print(f"\n## 3. Latency and throughput ({args.requests} requests per row; simulated LM: "
          f"{args.lm_latency * 1000:.0f} ms per request on 127.0.0.1)\n", flush=True)
    users = [f"user{k}" for k in range(20)]
    demos = [{"prompt": "How do I boil an egg?", "response_a": "Ten minutes.",
              "response_b": "Eggs are a versatile food...", "reasoning": "The user wants it short.",
              "preferred": "A"}]
    judges = [PersonalizedJudge(u, "The user wants short, direct answers without preamble.", demos=demos)
              for u in users]
    context, a, b = "How long should I steep green tea?", "Two to three minutes at 80 C.", \
        "Green tea has a long history. Steeping it well depends on many factors, such as..."
    rows: list[list[object]] = []
    held = True
    server = PostgresServer()
    try:
        server.start()
        databases = {"sqlite": str(root / "latency.db"), "postgresql": server.create_database("latency")}
    except PostgresUnavailable as exc:
        print(f"PostgreSQL rows left out: {exc}")
        databases = {"sqlite": str(root / "latency.db")}
    try:
        with simulated_server(args.lm_latency) as stub, dspy.context(adapter=default_adapter()):
            lm = get_lm("openai/simulated", api_base=stub.api_base, api_key="none", cache=False)
            backends = {"reward model": rm_backend, "simulated LM": LLMJudgeBackend(lm)}
            for db_name, target in databases.items():
                for backend_name, backend in backends.items():
                    policy = UpdatePolicy(debounce_s=60.0)
                    timed = _Timed(backend)
                    with PersonaStore(target, backend=timed, policy=policy, background=False,
                                      tenant=backend_name.replace(" ", "-")) as store:
                        store.import_judges(judges)
                        fitted = {u: store.fitted_judge(u) for u in users}
                        backend.compare(fitted[users[0]], [], context, a, b)      # warm up
                        for concurrency in (1, 16):
                            n = args.requests
                            direct = _load(lambda i, backend=backend, fitted=fitted: backend.compare(
                                fitted[users[i % 20]], [], context, a, b), n, concurrency)
                            own: list[float] = []

                            def judge(i: int, store: Any = store, timed: Any = timed, own: list[float] = own) -> None:
                                start = time.perf_counter()
                                store.judge(users[i % 20], context, a, b)
                                own.append(time.perf_counter() - start - timed.local.inner)

                            through = _load(judge, n, concurrency)
                            rows.append([db_name, backend_name, "judge", concurrency, *_fmt(through), *_fmt(direct),
                                         f"{statistics.median(own) * 1000:.2f}"])
                            print("  " + " | ".join(map(str, rows[-1])), flush=True)
                        for concurrency in (1, 16):
                            stamp = f"{db_name}-{concurrency}-{time.time_ns()}"

                            def add(i: int, stamp: str = stamp) -> None:
                                store.add_preferences(users[i % 20], [PreferenceRecord(
                                    [Turn("user", f"question {stamp} {i}")], "short", "long answer",
                                    record_id=f"{stamp}-{i}")])

                            result = _load(add, args.requests, concurrency)
                            rows.append([db_name, backend_name, "add_preferences", concurrency, *_fmt(result),
                                         "", "", "", ""])
                            print("  " + " | ".join(map(str, rows[-1])), flush=True)
                held &= _writers(target, db_name)
    finally:
        server.stop()
    print()
    print(table(["database", "backend", "call", "threads", "store p50 ms", "store p99 ms", "store /s",
                  "direct p50 ms", "direct p99 ms", "direct /s", "store's own p50 ms"], rows))
    overheads = [float(r[-1]) for r in rows if r[2] == "judge" and r[3] == 1]
    worst = max(overheads) if overheads else float("nan")
    met = bool(overheads) and worst <= 5.0
    print("\n(store's own time: a store judgment's latency less the backend's compare inside it; the direct and "
          "store columns are separate runs, so their difference also holds the backend's run-to-run noise)")
    print(f"target: judge through the store adds <= 5 ms p50 over the direct judge (one thread): "
          f"{'met' if met else 'NOT met'} (at most {worst:+.2f} ms)")
    print(f"target: 50 concurrent writers lose no preference: {'met' if held else 'NOT met'}")
    return met and held


class _Timed:
    """A backend that notes how long each ``compare`` took in its thread: a store judgment's own
    time is its latency less that."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.name, self.lm = backend, backend.name, backend.lm
        self.local = threading.local()

    def compare(self, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.backend.compare(*args)
        finally:
            self.local.inner = time.perf_counter() - start

    def prequential(self, *args: Any, **kwargs: Any) -> Any:
        return self.backend.prequential(*args, **kwargs)

    def scores(self, *args: Any) -> Any:
        return self.backend.scores(*args)


def _fmt(figures: tuple[float, float, float]) -> list[str]:
    return [f"{figures[0]:.2f}", f"{figures[1]:.2f}", f"{figures[2]:,.0f}"]


def _writers(target: str, db_name: str, writers: int = 50) -> bool:
    """50 threads, each with its own store: 20 pairs each, 10 of them shared by every writer."""
    from personae.data import PreferenceRecord, Turn
    from personae.store import PersonaStore, UpdatePolicy

    tenant = f"writers-{time.time_ns()}"

    def pair(key: str) -> PreferenceRecord:
        return PreferenceRecord([Turn("user", f"q {key}")], "a", "b", record_id=key)

    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            with PersonaStore(target, policy=UpdatePolicy(), background=False, tenant=tenant) as store:
                for i in range(10):
                    store.add_preferences("shared", [pair(f"shared-{(i + k) % 10}"), pair(f"w{k}-{i}")])
        except BaseException as exc:  # counted, and the run goes on
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with PersonaStore(target, background=False, tenant=tenant) as store:
        ids = [r.record_id for r in store.preferences("shared")]
    expected = 10 + 10 * writers
    ok = not errors and len(ids) == len(set(ids)) == expected
    print(f"  {db_name}: {writers} concurrent writers, {writers * 20} adds ({writers * 10} batches of 2) in "
          f"{time.perf_counter() - started:.1f} s: {len(set(ids))} of {expected} distinct preferences stored, "
          f"{len(ids) - len(set(ids))} doubled, {len(errors)} errors", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--parts", default="cost,prequential,latency")
    parser.add_argument("--users", type=int, default=3, help="users of the cost part (default 3)")
    parser.add_argument("--start", type=int, default=8, help="pairs of the first fit (default 8)")
    parser.add_argument("--steps", type=int, default=3, help="incremental steps per user (default 3)")
    parser.add_argument("--batch", type=int, default=2, help="new pairs per step (default 2)")
    parser.add_argument("--replay-users", type=int, default=4)
    parser.add_argument("--replay-pairs", type=int, default=16, help="pairs replayed per user (default 16)")
    parser.add_argument("--replay-batch", type=int, default=2)
    parser.add_argument("--clip-chars", type=int, default=400, help="clip every text to this many characters")
    parser.add_argument("--reward-model", default=None, help="a reward-model folder (default: train one)")
    parser.add_argument("--rm-steps", type=int, default=150)
    parser.add_argument("--requests", type=int, default=200, help="requests per latency row")
    parser.add_argument("--lm-latency", type=float, default=0.02)
    parser.add_argument("--out", default=str(ROOT / "runs" / "store_bench"))
    parser.add_argument("--smoke", action="store_true", help="every part at a tiny size")
    args = parser.parse_args(argv)
    if args.smoke:
        args.users, args.steps, args.replay_users, args.replay_pairs, args.requests, args.rm_steps = 1, 1, 1, 6, 20, 3
        args.out = str(Path(args.out) / "smoke")
    parts = set(args.parts.split(","))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    held = []
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        root = Path(tmp)
        if "cost" in parts:
            held.append(part_cost(args, root))
        replay = _users(args, args.replay_pairs)[-args.replay_users:]  # the same users whatever the parts
        if parts & {"prequential", "latency"}:
            backend = reward_model(args, root, {u.user_id for u in replay})
            if "prequential" in parts:
                held.append(part_prequential(args, root, backend, replay))
            if "latency" in parts:
                held.append(part_latency(args, root, backend))
    return 0 if all(held) else 1


if __name__ == "__main__":
    sys.exit(main())
