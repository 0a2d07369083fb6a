"""The console and the run viewer at size: how long a page of 1,000 users and a run of 5,000
judgments take to open.

A store is filled with ``--users`` users of one tenant (each with ``--pairs`` preferences, two
persona versions, a prequential judgment of every pair after the first four, and every tenth
user a failed job), written straight into its tables; beside them, a run log of ``--judgments``
judgments (two methods, both orders, the messages sent kept, as ``personae evaluate`` writes
them). Then, on this machine:

- the console (``personae serve-api``'s app on uvicorn on 127.0.0.1, no tokens): the users page
  at 50 and at 1,000 a page, searched, and one user's page, through an HTTP client (the
  server's time) and in Chromium (navigation to the ``load`` event, the chart drawn);
- the viewer: reading the run (``load_run``: the log parsed, accuracy and its bootstrap interval
  per method), the overview page, the judgments page (first page, and filtered), through an
  HTTP client and in Chromium.

Each figure is the median of ``--repeat`` loads, printed beside the target (under a second).

    python benchmarks/console.py               # about a minute
    python benchmarks/console.py --smoke       # tiny: checks the script
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TARGET_S = 1.0


def fill_store(path: Path, users: int, pairs: int) -> None:
    """``users`` users of tenant ``default``, written straight into the store's tables."""
    from personae.store import PersonaStore
    from personae.store._schema import jobs, judgments, personas, preferences

    rng = random.Random(0)
    now = time.time()
    with PersonaStore(path, background=False) as store, store._core.db.write() as conn:
        pref_rows, persona_rows, judgment_rows, job_rows = [], [], [], []
        for u in range(users):
            user = f"user-{u:05d}"
            ids = [f"{user}-p{i}" for i in range(pairs)]
            for i, pref in enumerate(ids):
                record = {"record_id": pref, "user_id": user, "context": [{"role": "user", "content": f"question {i} "
                                                                           "about something the user cares about"}],
                          "chosen": f"a short answer {i}", "rejected": f"a much longer and padded answer {i}"}
                pref_rows.append({"tenant": "default", "user_id": user, "pref_id": pref, "content_hash": pref,
                                  "record": record, "created_at": now - pairs + i, "arrived_version": 0 if i < 4 else 1,
                                  "learned_version": 1 if i < 4 else 2})
                if i >= 4:
                    right = rng.random() < 0.7
                    judgment_rows.append({"tenant": "default", "user_id": user, "pref_id": pref, "version": 1,
                                          "correct": right, "created_at": now - pairs + i,
                                          "row": {"record_id": pref, "user_id": user, "method": "persona",
                                                  "first": "chosen", "preferred": "A" if right else "B",
                                                  "picked": "chosen" if right else "rejected", "correct": right,
                                                  "reasoning": "the shorter answer is what this user picks",
                                                  "attempts": 1}})
            for version, used, method in ((1, ids[:4], "first-fit"), (2, ids, "incremental")):
                persona_rows.append({"tenant": "default", "user_id": user, "version": version,
                                     "persona": f"Prefers short answers (version {version}).", "judge": {},
                                     "preference_ids": used, "method": method, "reason": "benchmark",
                                     "val_accuracy": None, "cost": {}, "created_at": now - 10 + version})
            if u % 10 == 0:
                job_rows.append({"id": f"{u:032d}", "tenant": "default", "user_id": user, "status": "failed",
                                 "due_at": now, "created_at": now, "attempts": 3, "error": "timed out",
                                 "kind": "timeout"})
        for table, rows in ((preferences, pref_rows), (personas, persona_rows), (judgments, judgment_rows),
                            (jobs, job_rows)):
            for start in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[start:start + 5000])


def write_run(path: Path, judgments: int) -> None:
    """A run log of ``judgments`` judgments (two methods, both orders), as evaluate writes it."""
    from personae.runs import Judgment, RunLog, write_log

    rng = random.Random(1)
    rows = []
    system = "Your input fields are:\n1. `prompt` (str)\n2. `response_a` (str)\n3. `response_b` (str)\n" * 8
    for k in range(judgments):
        user, pair, method = f"user-{k // 40:04d}", (k // 4) % 10, ("default", "persona")[(k // 2) % 2]
        first = ("chosen", "rejected")[k % 2]
        right = rng.random() < 0.6
        picked = first if right == (first == "chosen") else ("rejected" if first == "chosen" else "chosen")
        content = (f"[[ ## prompt ## ]]\nquestion {pair} of {user}, with enough words to look like a request\n\n"
                   f"[[ ## response_a ## ]]\n{'an answer, ' * 40}\n\n[[ ## response_b ## ]]\n{'another, ' * 40}")
        rows.append(Judgment(record_id=f"{user}-r{pair}", user_id=user, method=method, first=first,
                             preferred="A" if picked == first else "B", picked=picked,
                             correct=picked == "chosen", reasoning="one reads better for this user " * 3,
                             attempts=1, prompt=[{"role": "system", "content": system},
                                                 {"role": "user", "content": content}],
                             raw_output='{"preferred": "A"}',
                             persona="Likes short answers." if method == "persona" else None))
    log = RunLog[dict[str, Any], dict[str, Any]](command="evaluate", status="success",
                                                 config={"model": "benchmark", "seed": 0}, results={},
                                                 judgments=rows)
    write_log(log, path)


def serve_in_thread(app: Any) -> tuple[str, Callable[[], None]]:
    """``app`` on uvicorn on 127.0.0.1 in a thread; its URL and how to stop it."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


def median_s(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--judgments", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.users, args.judgments, args.repeat = 60, 200, 1

    import logging

    from playwright.sync_api import sync_playwright

    from browser import chromium_path
    from personae.service import ServiceSettings, create_app
    from personae.store import PersonaStore
    from personae.web.viewer import load_run, viewer_app

    for noisy in ("mcp", "httpx"):   # one line per request would bury the table
        logging.getLogger(noisy).setLevel(logging.WARNING)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        db, log = Path(folder) / "store.db", Path(folder) / "run.json"
        start = time.perf_counter()
        fill_store(db, args.users, args.pairs)
        write_run(log, args.judgments)
        print(f"filled a store of {args.users} users and a run of {args.judgments} judgments in "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        loaded = load_run(log)
        rows.append((f"viewer: read the run ({args.judgments} judgments, intervals)",
                     median_s(lambda: load_run(log), args.repeat)))
        store = PersonaStore(db, background=False)
        console_url, stop_console = serve_in_thread(create_app(store, settings=ServiceSettings(auth=False)))
        viewer_url, stop_viewer = serve_in_thread(viewer_app(loaded))
        pages = {
            "console: users, 50 a page": f"{console_url}/console/users?limit=50",
            f"console: users, {min(1000, args.users)} a page": f"{console_url}/console/users?limit=1000",
            "console: users searched ('0099')": f"{console_url}/console/users?q=0099&limit=1000",
            "console: a user's page": f"{console_url}/console/user?id=user-00042",
            "viewer: overview": f"{viewer_url}/",
            "viewer: judgments, first page": f"{viewer_url}/judgments",
            "viewer: judgments, one user's wrong ones": f"{viewer_url}/judgments?user=user-0042&outcome=wrong",
        }
        try:
            with httpx.Client(follow_redirects=True, timeout=60) as client:
                client.get(f"{console_url}/console/users")   # signs in (no tokens: the session opens)
                for name, url in pages.items():
                    response = client.get(url)
                    assert response.status_code == 200, (url, response.status_code)
                    rows.append((f"{name} (HTTP)", median_s(lambda url=url: client.get(url), args.repeat)))
                count = client.get(pages[f"console: users, {min(1000, args.users)} a page"]).text.count("<tr><td>")
                assert count == min(1000, args.users), count
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
                page = browser.new_page()
                page.goto(f"{console_url}/console/users")
                for name, url in pages.items():
                    def visit(url: str = url) -> None:
                        page.goto(url, wait_until="load")
                    visit()
                    rows.append((f"{name} (browser, to load)", median_s(visit, args.repeat)))
                page.goto(pages["console: a user's page"])
                assert page.get_attribute("#accuracy-chart", "data-drawn") == "3"
                browser.close()
        finally:
            stop_console()
            stop_viewer()
            store.close()
    width = max(len(name) for name, _ in rows)
    print(f"{'page':<{width}}  {'median s':>9}  {'target s':>9}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:>9.3f}  {TARGET_S:>9.1f}{'' if seconds < TARGET_S else '  OVER'}")
    print(json.dumps({"users": args.users, "judgments": args.judgments, "repeat": args.repeat}))
    return 0 if all(seconds < TARGET_S for _, seconds in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
