"""Overload is refused fast and fairly (``personae.service._admission``).

The queue and the bucket on their own, in asyncio; then a real ``personae serve-api`` whose
judge's model is a stub on 127.0.0.1 that takes as long as a test says, driven by plain httpx:
a tenant's rate and requests in flight (429), a full judge queue (503 at once), a waiter that
waits too long (503 at its timeout), health under saturation, slots given back after errors and
disconnects, and a polite tenant's fair share beside a greedy one.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from helpers import record, stub_answer

pytest.importorskip("fastapi")

from personae.client import PersonaeClient, ServiceError  # noqa: E402
from personae.service._admission import JUDGE_TOOLS, FairQueue, Shed, TokenBucket  # noqa: E402
from personae.service.mcp import TOOLS  # noqa: E402
from personae.store import PersonaStore  # noqa: E402
from personae.testing import serve_api, stub_server  # noqa: E402

JUDGE = {"prompt": "q", "response_a": "ok", "response_b": "a longer answer"}


class SlowLM:
    """The stub's answers (:func:`helpers.stub_answer`), a judgment after ``delay_s``; ``fail``: 500s."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.fail = False

    def __call__(self, body):
        if "preferred" in body["messages"][0]["content"]:
            time.sleep(self.delay_s)
            if self.fail:
                return 500, "upstream exploded"
        return stub_answer(body)


@pytest.fixture
def lm():
    script = SlowLM()
    with stub_server(script) as stub:
        script.api_base = stub.api_base
        yield script


def _store(db: Path, *tenants: str) -> dict[str, str]:
    """A token for each tenant, whose user ``u1`` holds two preferences (written without a judge:
    no update job runs)."""
    found = {}
    with PersonaStore(db, background=False) as root:
        for tenant in tenants:
            root.for_tenant(tenant).add_preferences("u1", [record(i) for i in range(2)])
            found[tenant] = root.tokens.create(tenant)[1]
    return found


def _args(lm: SlowLM, *extra: str) -> list[str]:
    return ["--judge", "openai/stub-model", "--api-base", lm.api_base, "--api-key", "sk-test", "--no-cache",
            "--lm-retries", "0", "--max-attempts", "1", "--debounce", "0", *extra]


def _metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return float(re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M).group(1))


class Calls:
    """Requests sent from threads: each one's status, seconds and answer, by key."""

    def __init__(self) -> None:
        self.answers: dict[object, tuple[int, float, httpx.Response | None]] = {}
        self.threads: list[threading.Thread] = []

    def start(self, key: object, method: str, url: str, token: str, timeout: float = 30, **kwargs) -> None:
        def send() -> None:
            start = time.perf_counter()
            try:
                response = httpx.request(method, url, headers={"Authorization": f"Bearer {token}"},
                                         timeout=timeout, **kwargs)
                self.answers[key] = (response.status_code, time.perf_counter() - start, response)
            except httpx.TimeoutException:
                self.answers[key] = (0, time.perf_counter() - start, None)

        thread = threading.Thread(target=send)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)


# -- the parts, in asyncio ------------------------------------------------------------------------------
def test_the_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, tokens=3, stamp=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)    # the next token is due in half a second
    assert bucket.take(0.5) == 0.0 and bucket.take(0.5) == pytest.approx(0.5)
    assert [bucket.take(100.0) for _ in range(4)][-1] > 0   # never more than the burst kept


def test_the_queue_is_fair_bounded_and_gives_every_slot_back() -> None:
    async def main() -> None:
        queue = FairQueue(slots=1, per_tenant=3, timeout_s=5)
        order: list[str] = []
        release = asyncio.Event()

        async def judge_in(queue: FairQueue, tenant: str, name: str) -> None:
            async with queue.slot(tenant):
                order.append(name)
                await release.wait()

        async def judge(tenant: str, name: str) -> None:
            await judge_in(queue, tenant, name)

        holder = asyncio.create_task(judge("greedy", "g0"))
        await asyncio.sleep(0)
        waiters = [asyncio.create_task(judge("greedy", f"g{i}")) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        waiters.append(asyncio.create_task(judge("polite", "p1")))
        await asyncio.sleep(0)
        assert (queue.running, queue.depth) == (1, 4)
        with pytest.raises(Shed) as full:   # greedy's line is full; polite's is not
            async with queue.slot("greedy"):
                pass
        assert (full.value.status, full.value.kind, full.value.reason) == (503, "overloaded", "queue_full")
        assert full.value.retry_after >= 1
        release.set()
        await asyncio.gather(holder, *waiters)
        assert order == ["g0", "g1", "p1", "g2", "g3"]   # a freed slot goes round the tenants
        assert (queue.running, queue.depth) == (0, 0)

        # a freed slot goes to the tenant holding the fewest, whoever's turn it would be
        wide = FairQueue(slots=2, per_tenant=3, timeout_s=5)
        release.clear()
        order.clear()
        greedy = [asyncio.create_task(judge_in(wide, "greedy", f"g{i}")) for i in range(3)]
        await asyncio.sleep(0)
        polite = asyncio.create_task(judge_in(wide, "polite", "p0"))
        await asyncio.sleep(0)
        assert order == ["g0", "g1"] and wide.depth == 2
        greedy[0].cancel()   # g0 gives its slot back: p0 (holding none) before g2 (greedy holds one)
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["g0", "g1", "p0"]
        release.set()
        await asyncio.gather(*greedy[1:], polite)
        assert order == ["g0", "g1", "p0", "g2"] and (wide.running, wide.depth) == (0, 0)

        # an error in the block, a waiter that times out, one cancelled, one cancelled as it is handed the slot
        with pytest.raises(RuntimeError):
            async with queue.slot("a"):
                raise RuntimeError("the judge failed")
        assert queue.running == 0
        queue.timeout_s = 0.05
        hold = asyncio.Event()

        async def holding() -> None:
            async with queue.slot("a"):
                await hold.wait()

        first = asyncio.create_task(holding())
        await asyncio.sleep(0)
        started = time.monotonic()
        with pytest.raises(Shed) as late:
            async with queue.slot("b"):
                pass
        assert late.value.reason == "queue_timeout" and time.monotonic() - started < 1
        assert (queue.running, queue.depth) == (1, 0)
        queue.timeout_s = 5
        cancelled = asyncio.create_task(judge("b", "never"))
        handed = asyncio.create_task(judge("c", "never either"))
        after = asyncio.create_task(judge("d", "d1"))
        await asyncio.sleep(0)
        assert queue.depth == 3
        cancelled.cancel()
        await asyncio.sleep(0)
        assert queue.depth == 2
        hold.set()
        await first   # its slot is handed to "c", which is cancelled before it runs: the slot goes on to "d"
        handed.cancel()
        await asyncio.gather(after, return_exceptions=True)
        assert order[-1] == "d1" and "never" not in order and "never either" not in order
        assert (queue.running, queue.depth) == (0, 0)

        # a client that goes away while it waits: 499, out of the line
        gone = asyncio.Event()
        first = asyncio.create_task(holding())
        hold.clear()
        await asyncio.sleep(0)
        waiting = asyncio.create_task(queue.slot("e", gone.wait).__aenter__())
        await asyncio.sleep(0)
        assert queue.depth == 1
        gone.set()
        with pytest.raises(ServiceError) as left:
            await waiting
        assert left.value.status == 499 and queue.depth == 0
        hold.set()
        await first
        assert (queue.running, queue.depth) == (0, 0)

    asyncio.run(main())


def test_the_judging_tools_are_the_mcp_servers() -> None:
    assert JUDGE_TOOLS <= {spec.name for spec in TOOLS}


# -- a real service ------------------------------------------------------------------------------------
def test_a_tenant_over_its_rate_or_in_flight_cap_gets_429(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    tokens = _store(db, "acme", "globex")
    lm.delay_s = 1.0
    with serve_api(db, _args(lm, "--rate-limit", "2", "--rate-burst", "5", "--tenant-concurrency", "2",
                             "--judge-concurrency", "1")) as service:
        acme = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {tokens['acme']}"}, timeout=30)
        try:
            assert [acme.get("/v1/users").status_code for _ in range(5)] == [200] * 5
            refused = acme.get("/v1/users")
            assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limited"
            assert int(refused.headers["retry-after"]) == refused.json()["error"]["retry_after"] == 1
            mcp = acme.post("/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                            headers={"Accept": "application/json, text/event-stream"})
            assert mcp.status_code == 429 and mcp.json()["error"]["type"] == "rate_limited"   # /mcp shares the bucket
            assert mcp.headers["retry-after"] == "1"
            started = time.perf_counter()
            with PersonaeClient(service.url, token=tokens["acme"], retries=3) as client:
                assert client.users() == ["u1"]   # after the Retry-After it was told
            assert time.perf_counter() - started >= 0.9
            assert all(httpx.get(f"{service.url}/healthz").status_code == 200 for _ in range(10))   # never limited
            with PersonaeClient(service.url, token=tokens["acme"], retries=0) as client:
                for _ in range(10):   # empties the bucket again
                    try:
                        client.users()
                    except ServiceError as exc:
                        assert (exc.status, exc.kind) == (429, "rate_limited")
                        break
                else:
                    pytest.fail("no 429 within 10 requests at 2 a second")

            calls = Calls()   # another tenant: its own bucket; 2 in flight at most
            for i in range(3):
                calls.start(i, "POST", f"{service.url}/v1/users/u1/judge", tokens["globex"], json=JUDGE)
                time.sleep(0.15)
            calls.join()
            statuses = sorted(status for status, _, _ in calls.answers.values())
            assert statuses == [200, 200, 429], statuses
            capped = next(r for s, _, r in calls.answers.values() if s == 429)
            assert capped.json()["error"]["type"] == "rate_limited" and "in flight" in capped.json()["error"]["message"]
            assert next(t for s, t, _ in calls.answers.values() if s == 429) < 0.5   # refused at once
            assert _metric(service.url, "personae_requests_refused_total", '{reason="tenant_concurrency"}') == 1
            assert _metric(service.url, "personae_requests_refused_total", '{reason="rate_limit"}') >= 3
            assert _metric(service.url, "personae_requests_in_flight") == 0
        finally:
            acme.close()


def test_a_full_judge_queue_is_shed_at_once_and_health_answers(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    tokens = _store(db, "acme")
    lm.delay_s = 3.0
    # two request threads: the judge may use one; two of a tenant's judgments may wait 1.5 s
    with serve_api(db, _args(lm, "--threads", "2", "--judge-queue", "2", "--judge-queue-timeout", "1.5")) as service:
        url = f"{service.url}/v1/users/u1/judge"
        calls = Calls()
        sent = time.perf_counter()
        for i in range(3):   # one runs, two wait
            calls.start(i, "POST", url, tokens["acme"], json=JUDGE)
            time.sleep(0.1)
        time.sleep(0.2)
        for path in ("/healthz", "/readyz", "/metrics"):   # every judge slot busy: health answers at once
            started = time.perf_counter()
            assert httpx.get(f"{service.url}{path}", timeout=5).status_code == 200
            assert time.perf_counter() - started < 0.5, path
        assert _metric(service.url, "personae_judge_in_flight") == 1
        assert _metric(service.url, "personae_judge_queue_depth") == 2
        started = time.perf_counter()
        shed = httpx.post(url, json=JUDGE, headers={"Authorization": f"Bearer {tokens['acme']}"}, timeout=30)
        assert time.perf_counter() - started < 0.5   # shed at once, not after the 3 s judge
        assert shed.status_code == 503 and shed.json()["error"]["type"] == "overloaded"
        assert int(shed.headers["retry-after"]) >= 1
        started = time.perf_counter()
        tool = httpx.post(f"{service.url}/mcp/", timeout=30, headers={
            "Authorization": f"Bearer {tokens['acme']}", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                  "params": {"name": "judge_drafts", "arguments": {"user_id": "u1", **JUDGE}}})
        assert time.perf_counter() - started < 0.5 and tool.status_code == 200
        result = tool.json()["result"]
        assert result["isError"] and result["content"][0]["text"].startswith("overloaded: ")
        assert int(tool.headers["retry-after"]) >= 1
        with PersonaeClient(service.url, token=tokens["acme"], retries=0) as client, \
                pytest.raises(ServiceError) as caught:
            client.judge("u1", "q", "ok", "a longer answer")
        assert (caught.value.status, caught.value.kind) == (503, "overloaded") and caught.value.retry_after >= 1
        calls.join()
        answers = [calls.answers[i] for i in range(3)]
        assert answers[0][0] == 200
        for status, seconds, response in answers[1:]:   # waited their 1.5 s, not the judge's 3 s
            assert status == 503 and response.json()["error"]["type"] == "overloaded", response.text
            assert 1.3 < seconds < 2.5 and "stayed busy" in response.json()["error"]["message"]
        assert time.perf_counter() - sent < 4.5
        assert _metric(service.url, "personae_requests_refused_total", '{reason="queue_full"}') == 3
        assert _metric(service.url, "personae_requests_refused_total", '{reason="queue_timeout"}') == 2
        assert _metric(service.url, "personae_judge_in_flight") == 0
        assert _metric(service.url, "personae_judge_queue_depth") == 0


def test_slots_are_given_back_after_errors_and_disconnects(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    tokens = _store(db, "acme")
    with serve_api(db, _args(lm, "--judge-concurrency", "1", "--judge-queue", "4")) as service, \
            httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {tokens['acme']}"},
                         timeout=30) as http:
        lm.fail = True
        for _ in range(3):   # the judge's model fails: each slot comes back
            assert http.post("/v1/users/u1/judge", json=JUDGE).json()["error"]["type"] == "lm_unavailable"
        lm.fail = False
        assert http.post("/v1/users/nobody/judge", json=JUDGE).status_code == 404
        assert http.post("/v1/users/u1/judge", json={**JUDGE, "extra": 1}).status_code == 422
        assert http.post("/v1/users/u1/rank", json={"prompt": "q", "candidates": ["a", "bb"]}).status_code == 200
        assert _metric(service.url, "personae_judge_in_flight") == 0

        lm.delay_s = 1.5   # a client that gives up while its judgment runs, one that gives up while it waits
        calls = Calls()
        calls.start("running", "POST", f"{service.url}/v1/users/u1/judge", tokens["acme"], timeout=0.5, json=JUDGE)
        time.sleep(0.1)
        calls.start("waiting", "POST", f"{service.url}/v1/users/u1/judge", tokens["acme"], timeout=0.3, json=JUDGE)
        calls.join()
        assert [calls.answers[k][0] for k in ("running", "waiting")] == [0, 0]   # both timed out
        time.sleep(0.2)
        assert _metric(service.url, "personae_judge_queue_depth") == 0   # the waiter left the line
        assert _metric(service.url, "personae_judge_in_flight") == 1     # the judgment runs to its end
        lm.delay_s = 0.0
        deadline = time.monotonic() + 5
        while _metric(service.url, "personae_judge_in_flight") and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.perf_counter()
        assert http.post("/v1/users/u1/judge", json=JUDGE).status_code == 200
        assert time.perf_counter() - started < 1
        assert _metric(service.url, "personae_judge_in_flight") == 0
        assert _metric(service.url, "personae_requests_in_flight") == 0


def test_a_polite_tenant_gets_its_share_beside_a_greedy_one(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    tokens = _store(db, "greedy", "polite")
    lm.delay_s = 0.1
    clients = {"greedy": 10, "polite": 3}
    with serve_api(db, _args(lm, "--judge-concurrency", "2", "--judge-queue", "16")) as service:
        done: Counter[str] = Counter()
        statuses: dict[str, Counter[int]] = {tenant: Counter() for tenant in clients}
        lock = threading.Lock()
        start = threading.Barrier(sum(clients.values()) + 1)
        window: list[float] = []

        def loop(tenant: str) -> None:
            with httpx.Client(base_url=service.url, timeout=30,
                              headers={"Authorization": f"Bearer {tokens[tenant]}"}) as http:
                start.wait()
                while not window or time.monotonic() < window[1]:
                    response = http.post("/v1/users/u1/judge", json=JUDGE)
                    with lock:
                        statuses[tenant][response.status_code] += 1
                        if window and window[0] <= time.monotonic() <= window[1]:
                            done[tenant] += 1

        threads = [threading.Thread(target=loop, args=(t,)) for t, n in clients.items() for _ in range(n)]
        for thread in threads:
            thread.start()
        now = time.monotonic()
        window.extend([now + 0.5, now + 3.5])   # counted once both compete, for 3 s
        start.wait()
        for thread in threads:
            thread.join(30)
    assert statuses["polite"] == Counter({200: statuses["polite"][200]}), statuses   # every polite request admitted
    share = done["polite"] / (done["polite"] + done["greedy"])
    assert done["polite"] + done["greedy"] >= 20, done
    assert share >= 0.45, (share, done)   # first come, first served would give it 3 of 13


def test_an_mcp_judgment_that_waits_for_a_slot_is_answered_once_it_has_one(tmp_path, lm) -> None:
    """The waiter's watch for a disconnect reads the client's channel, never the body the MCP
    server is about to read: a judging tool call that queued is served, not left hanging."""
    db = tmp_path / "s.db"
    tokens = _store(db, "acme")
    lm.delay_s = 1.0
    with serve_api(db, _args(lm, "--threads", "2", "--judge-queue", "2", "--judge-queue-timeout", "8")) as service:
        calls = Calls()
        calls.start("rest", "POST", f"{service.url}/v1/users/u1/judge", tokens["acme"], json=JUDGE)
        time.sleep(0.3)   # the REST judgment holds the one slot: the tool call waits for it
        started = time.perf_counter()
        tool = httpx.post(f"{service.url}/mcp/", timeout=10, headers={
            "Authorization": f"Bearer {tokens['acme']}", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                  "params": {"name": "judge_drafts", "arguments": {"user_id": "u1", **JUDGE}}})
        waited = time.perf_counter() - started
        calls.join()
        assert tool.status_code == 200 and not tool.json()["result"].get("isError"), tool.text
        assert 0.5 < waited < 5.0   # it waited for the slot, then was judged (1 s), not left to time out
        assert calls.answers["rest"][0] == 200
        assert _metric(service.url, "personae_judge_in_flight") == 0


def test_a_token_that_may_not_judge_is_refused_at_once_not_after_waiting_in_line(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    tokens = _store(db, "acme")
    with PersonaStore(db, background=False) as root:
        writer = root.tokens.create("acme", "ingest", scopes=["write"])[1]
    lm.delay_s = 2.0
    with serve_api(db, _args(lm, "--threads", "2", "--judge-queue", "2", "--judge-queue-timeout", "8")) as service:
        calls = Calls()
        url = f"{service.url}/v1/users/u1/judge"
        calls.start("busy", "POST", url, tokens["acme"], json=JUDGE)
        time.sleep(0.3)   # the one slot is taken for 2 s
        started = time.perf_counter()
        refused = httpx.post(url, json=JUDGE, headers={"Authorization": f"Bearer {writer}"}, timeout=10)
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "forbidden"
        assert time.perf_counter() - started < 0.5
        calls.join()
        assert calls.answers["busy"][0] == 200
