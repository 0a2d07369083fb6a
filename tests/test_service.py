"""The persona service: a real ``personae serve-api`` on 127.0.0.1, driven by the client and plain httpx.

The judge's model is an OpenAI-compatible stub on 127.0.0.1 that prefers the shorter response
and writes a fixed persona; its ``mode`` turns it into a failing one (5xx, 429, garbage).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import httpx
import pytest

from helpers import record
from personae.client import AsyncPersonaeClient, PersonaeClient, ServiceError
from personae.data import PreferenceRecord
from personae.errors import ConfigError, DataError, LMCallError
from personae.store import UnknownUserError
from personae.testing import create_token, serve_api, stub_server, tokens

pytest.importorskip("fastapi")

SECRET_KEY = "zq7Rkeyfor_the_stub_server_31337"   # shaped like no known key: only --api-key says it is secret


class LM:
    """What the stub answers: ``mode`` is ok, server_error, rate_limit or garbage."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None

    def __call__(self, body):
        system = body["messages"][0]["content"]
        user = body["messages"][-1]["content"]
        task = "revise" if "revised_persona" in system else "judge" if "preferred" in system else "synthesize"
        with self.lock:
            self.calls[task] = self.calls.get(task, 0) + 1
        if self.gate is not None and task != "judge":
            self.gate.wait(30)
        if self.mode == "server_error":
            return 500, f"upstream exploded (key {SECRET_KEY})"
        if self.mode == "rate_limit":
            return 429, "slow down"
        if self.mode == "garbage":
            return 200, "I refuse to answer in JSON."
        if task == "revise":
            return 200, json.dumps({"reasoning": "r", "revised_persona": "Prefers short answers; revised."})
        if task == "synthesize":
            return 200, json.dumps({"reasoning": "r", "persona": "Prefers short answers."})
        first = re.search(r"response_a ## \]\]\n(.*?)\n", user).group(1)
        second = re.search(r"response_b ## \]\]\n(.*?)\n", user).group(1)
        return 200, json.dumps({"reasoning": "shorter wins",
                                "preferred": "A" if len(first) <= len(second) else "B"})


def pair(i: int, user: str = "u1") -> PreferenceRecord:
    return record(i, chosen=f"ok {i}", rejected=f"a much longer answer number {i}", user=user)


def api_pair(i: int) -> dict:
    return {"id": f"p{i}", "prompt": f"question {i}", "chosen": f"ok {i}", "rejected": f"a much longer answer {i}"}


@pytest.fixture
def lm():
    script = LM()
    with stub_server(script) as stub:
        script.api_base = stub.api_base
        yield script


def llm_args(lm: LM, *extra: str) -> list[str]:
    return ["--judge", "openai/stub-model", "--api-base", lm.api_base, "--api-key", SECRET_KEY, "--no-cache",
            "--lm-retries", "0", "--max-attempts", "2", "--debounce", "0", "--token-cache", "0", *extra]


def test_every_route_through_the_client(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    token = create_token(db, "acme")
    with serve_api(db, llm_args(lm)) as service, PersonaeClient(service.url, token=token) as client:
        assert client.health() == {"status": "ok", "detail": {}}
        assert client.health(ready=True)["detail"] == {"schema": "0003", "judge": "llm"}
        assert not client.exists("u1") and client.users() == []
        with pytest.raises(UnknownUserError):
            client.persona("u1")

        added = client.add_preferences("u1", [pair(i) for i in range(5)])
        assert added.added == [f"r{i}" for i in range(5)] and added.job_id
        stored = client.preferences("u1")
        assert [(r.record_id, r.prompt, r.chosen, r.rejected, r.user_id) for r in stored] == \
            [(f"r{i}", pair(i).prompt, pair(i).chosen, pair(i).rejected, "u1") for i in range(5)]
        assert client.fitted_judge("u1") is None   # no persona before the first update
        job = client.wait_job(added.job_id, timeout=60)
        assert job is not None and job.status == "done" and job.result["action"] == "first-fit"
        state = client.persona("u1")
        assert (state.version, state.persona, state.pairs_seen, state.personalization) == \
            (1, "Prefers short answers.", 5, "persona")
        assert state.prequential_judged == 5 and 0 < state.confidence < state.prequential_accuracy <= 1
        assert [v.method for v in client.history("u1")] == ["first-fit"]

        verdict = client.judge("u1", "question", "a long and winding answer", "ok")
        assert (verdict.preferred, verdict.version, verdict.personalization) == ("B", 1, "persona")
        assert verdict.probability == 0.0 and not verdict.abstained
        ranking = client.rank("u1", "question", ["a long and winding answer", "ok", "middling answer"])
        assert ranking.best == 1 and ranking.order[0] == 1 and ranking.comparisons == 2 and len(ranking.verdicts) == 2
        messages = client.generation_messages("u1")
        assert messages[0]["role"] == "system" and "Prefers short answers." in messages[0]["content"]
        assert client.fitted_judge("u1").persona == "Prefers short answers."
        judge = client.export("u1", tmp_path)
        assert judge.persona == "Prefers short answers." and (tmp_path / "u1.json").exists()
        assert client.users() == ["u1"] and client.exists("u1")

        again = client.add_preferences("u1", [pair(0), pair(5), pair(6)])   # one retried, two new
        assert again.duplicates == ["r0"] and again.added == ["r5", "r6"]
        assert client.wait_job(again.job_id, timeout=60).status == "done"
        assert client.persona("u1").version == 2 and client.history("u1")[-1].method == "incremental"

        metrics = httpx.get(f"{service.url}/metrics").text
        assert re.search(r'personae_http_requests_total\{method="POST",route="/v1/users/\{user_id\}/judge",'
                         r'status="200"\} 1\.0', metrics)
        assert 'personae_http_request_duration_seconds_bucket{le="+Inf",method="POST"' in metrics
        calls = float(re.search(r"^personae_lm_calls_total (\S+)", metrics, re.M).group(1))
        assert calls == sum(lm.calls.values())   # every LM call: requests' and update jobs'
        assert float(re.search(r"^personae_lm_prompt_tokens_total (\S+)", metrics, re.M).group(1)) > 0
        assert re.search(r'^personae_update_jobs\{status="done"\} 2\.0', metrics, re.M)
        for odd in ("PURGE", "PROPFIND", "MKCOL"):   # methods no route takes share one label: no series each
            assert httpx.request(odd, f"{service.url}/metrics").status_code == 405
        metrics = httpx.get(f"{service.url}/metrics").text
        assert 'method="other",route="/metrics",status="405"} 3.0' in metrics and "PROPFIND" not in metrics
        with httpx.Client(base_url=service.url) as own, PersonaeClient(http_client=own, token=token) as borrowed:
            assert borrowed.persona("u1").version == 2   # the token travels with a caller's own httpx client
        with PersonaeClient(service.url + "/elsewhere", token=token) as lost, pytest.raises(ServiceError) as wrong:
            lost.persona("u1")
        assert wrong.value.kind == "no_route"   # a wrong base URL is not an unknown user

        removed = client.forget("u1")
        assert removed["preferences"] == 7 and removed["personas"] == 2
        assert not client.exists("u1") and client.job(added.job_id) is None
        with pytest.raises(UnknownUserError):
            client.forget("u1")
    assert SECRET_KEY not in service.log and token not in service.log


def test_the_async_client_has_the_same_methods(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    token = create_token(db, "acme")

    async def main(url: str) -> None:
        async with AsyncPersonaeClient(url, token=token) as client:
            added = await client.add_preferences("u@example.com", [pair(i, "u@example.com") for i in range(4)])
            assert (await client.wait_job(added.job_id, timeout=60)).status == "done"
            state = await client.persona("u@example.com")
            assert state.version == 1
            verdicts = await asyncio.gather(*(client.judge("u@example.com", "q", "ok", "a long answer")
                                              for _ in range(8)))
            assert {v.preferred for v in verdicts} == {"A"}
            assert await client.users() == ["u@example.com"]
            assert (await client.forget("u@example.com"))["preferences"] == 4

    with serve_api(db, llm_args(lm)) as service:
        loop = asyncio.new_event_loop()   # not asyncio.run: that would drop a loop another library set up
        try:
            loop.run_until_complete(main(service.url))
        finally:
            loop.close()


def test_a_token_sees_only_its_tenant(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    acme, globex = create_token(db, "acme"), create_token(db, "globex")
    with serve_api(db, llm_args(lm)) as service:
        a = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {acme}"}, timeout=30)
        g = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {globex}"}, timeout=30)
        anonymous = httpx.Client(base_url=service.url, timeout=30)
        try:
            job = a.post("/v1/users/u1/preferences", json={"preferences": [api_pair(i) for i in range(4)]})
            assert job.status_code == 202 and job.headers["location"] == f"/v1/jobs/{job.json()['job_id']}"
            job_id = job.json()["job_id"]
            with PersonaeClient(service.url, token=acme) as client:
                assert client.wait_job(job_id, timeout=60).status == "done"
            routes = [("GET", "/v1/users/u1/persona", None), ("GET", "/v1/users/u1/persona/history", None),
                      ("GET", "/v1/users/u1/generation-prompt", None), ("GET", "/v1/users/u1/export", None),
                      ("POST", "/v1/users/u1/judge", {"context": "q", "a": "x", "b": "y"}),
                      ("POST", "/v1/users/u1/rank", {"context": "q", "candidates": ["x", "y"]}),
                      ("GET", f"/v1/jobs/{job_id}", None)]
            for method, path, body in routes:
                assert a.request(method, path, json=body).status_code == 200, path
                other = g.request(method, path, json=body)
                assert other.status_code == 404 and other.json()["error"]["type"] == "not_found", path
                assert anonymous.request(method, path, json=body).status_code == 401, path
            timing = a.post("/v1/users/u1/judge", json={"context": "q", "a": "x", "b": "y"}).headers["server-timing"]
            # the store's and judge's own time, and the whole answer's
            assert re.fullmatch(r"store;dur=\d+\.\d\d, app;dur=\d+\.\d\d", timing), timing
            assert g.get("/v1/users").json() == {"users": [], "next_after": None}
            assert g.delete("/v1/users/u1").status_code == 404
            assert a.get("/v1/users/u1/persona").json()["pairs_seen"] == 4   # untouched by the other tenant
            wrong = anonymous.get("/v1/users/u1/persona", headers={"Authorization": "Bearer pst_nottoken123"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            token_id = next(line.split()[0] for line in tokens(db, "list", "--tenant", "acme").splitlines())
            tokens(db, "revoke", token_id)
            assert a.get("/v1/users/u1/persona").status_code == 401   # --token-cache 0: at once
            assert g.get("/v1/users").status_code == 200
        finally:
            for c in (a, g, anonymous):
                c.close()
    assert acme not in service.log and globex not in service.log


def test_bad_requests_get_4xx_naming_the_field(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    token = create_token(db, "acme")
    with serve_api(db, llm_args(lm, "--max-body-bytes", "200000", "--body-timeout", "1")) as service, \
            httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        def error(response: httpx.Response, status: int) -> dict:
            assert response.status_code == status, response.text
            assert "Traceback" not in response.text
            return response.json()["error"]

        missing = error(http.post("/v1/users/u1/preferences", json={"preferences": [{"prompt": "q", "chosen": "a"}]}),
                        422)
        assert missing["field"] == "body.preferences.0.rejected" and "required" in missing["message"]
        assert missing["record"] == 1  # the preference at fault, counted from 1 as the store counts
        both = error(http.post("/v1/users/u1/preferences", json={"preferences": [
            {**api_pair(0), "context": [{"role": "user", "content": "q"}]}]}), 422)
        assert both["field"] == "body.preferences.0"
        long_text = error(http.post("/v1/users/u1/preferences", json={"preferences": [
            {**api_pair(0), "chosen": "x" * 40000}]}), 422)
        assert long_text["field"] == "body.preferences.0.chosen"
        assert error(http.post("/v1/users/u1/preferences", content=b"{not json",
                               headers={"Content-Type": "application/json"}), 422)["type"] == "invalid_request"
        extra = error(http.post("/v1/users/u1/judge", json={"context": "q", "a": "x", "b": "y", "c": "z"}), 422)
        assert extra["field"] == "body.c"
        assert error(http.get("/v1/users/bad%20id/persona"), 422)["field"] == "path.user_id"
        assert error(http.get("/v1/users/" + "u" * 200 + "/persona"), 422)["field"] == "path.user_id"
        assert error(http.post("/v1/users/u1/preferences", content=b"x" * 300000,
                               headers={"Content-Type": "application/json"}), 413)["type"] == "payload_too_large"
        assert error(http.post("/v1/users/u1/rank", json={"context": "q", "candidates": ["x"] * 65}),
                     422)["field"] == "body.candidates"
        assert error(http.get("/v1/users/nobody/persona"), 404)["type"] == "not_found"
        assert error(http.get("/v1/jobs/not-a-job"), 422)["field"] == "path.job_id"
        assert error(http.get("/v1/jobs/" + "0" * 32), 404)["type"] == "not_found"
        assert http.get("/nowhere").status_code == 404
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        assert "access-control-allow-origin" not in http.options("/v1/users/u1/judge", headers=preflight).headers
        assert "access-control-allow-origin" not in http.get("/healthz", headers={"Origin": "https://app.example"}).headers
        # a body that trickles in is cut off: 408, the connection is not held
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(f"POST /v1/users/u1/judge HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"con".encode())
            assert raw.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.1 408 Request Timeout"
        # a record the store itself rejects names its place in the batch
        blank = {"id": "p1", "context": [{"role": "user", "content": "  "}], "chosen": "a", "rejected": "b"}
        last_turn = error(http.post("/v1/users/u1/preferences", json={"preferences": [api_pair(0), blank]}), 422)
        assert last_turn["field"] == "body.preferences.1.context" and last_turn["record"] == 2
        assert error(http.get("/v1/users/u1/persona"), 404)   # nothing of the rejected batch was kept

        with PersonaeClient(service.url, token=token) as client:
            with pytest.raises(DataError) as caught:
                client.add_preferences("u1", [pair(0), {"prompt": "q", "chosen": "a", "rejected": ""}])
            assert (caught.value.record, caught.value.field) == (2, "rejected")
            with pytest.raises(ConfigError):
                client.rank("u1", "q", ["x"] * 65)
            with pytest.raises(ServiceError) as denied, PersonaeClient(service.url, token="pst_wrong_token_0") as bad:
                bad.users()
            assert denied.value.status == 401 and denied.value.request_id


def test_lm_failures_are_503_or_502_and_the_service_keeps_serving(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    token = create_token(db, "acme")
    with serve_api(db, llm_args(lm)) as service, \
            httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        http.post("/v1/users/u1/preferences", json={"preferences": [api_pair(i) for i in range(2)]})
        judge = {"context": "q", "a": "ok", "b": "a much longer answer"}
        for mode, status, failure in (("server_error", 503, "server"), ("rate_limit", 503, "rate_limit"),
                                      ("garbage", 502, "parse")):
            lm.mode = mode
            answer = http.post("/v1/users/u1/judge", json=judge)
            assert answer.status_code == status, (mode, answer.text)
            body = answer.json()["error"]
            assert body["failure"] == failure and int(answer.headers["retry-after"]) >= 1
            assert SECRET_KEY not in answer.text and "Traceback" not in answer.text
            assert http.get("/v1/users/u1/persona").status_code == 200   # the rest keeps answering
        with PersonaeClient(service.url, token=token, retries=0) as client:
            with pytest.raises(LMCallError) as caught:
                client.judge("u1", "q", "ok", "a much longer answer")
            assert caught.value.kind == "parse"

        lm.mode = "server_error"   # an update that cannot reach its model fails and says why
        failed = http.post("/v1/users/u1/preferences", json={"preferences": [api_pair(i) for i in range(2, 5)]})
        job_id = failed.json()["job_id"]
        deadline = time.monotonic() + 90
        while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] != "failed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job["status"] == "failed" and job["kind"] == "server" and job["error"], job
        assert SECRET_KEY not in json.dumps(job) and "***" in job["error"]
        lm.mode = "ok"
        assert http.post("/v1/users/u1/judge", json=judge).json()["preferred"] == "A"
        assert http.get("/readyz").status_code == 200
    assert SECRET_KEY not in service.log
    for stored in tmp_path.glob("s.db*"):   # nor in the database: the job's error was redacted before it was kept
        assert SECRET_KEY.encode() not in stored.read_bytes(), stored.name


def test_a_bug_is_a_500_without_a_traceback_and_users_page_past_a_thousand(tmp_path, lm) -> None:
    import sqlalchemy as sa

    from personae.optimizers import PersonalizedJudge
    from personae.store import PersonaStore

    db = tmp_path / "s.db"
    with PersonaStore(db, background=False) as seed:
        for i in range(1003):
            seed.add_preferences(f"user{i:04d}", [pair(i, f"user{i:04d}")])
        seed.import_judges([PersonalizedJudge("broken", "Likes short answers.")])
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:   # a persona row no version of personae wrote
        conn.execute(sa.text("update personas set judge = '{\"persona\": 42}' where user_id = 'broken'"))
    engine.dispose()
    with serve_api(db, llm_args(lm, "--no-auth")) as service, PersonaeClient(service.url, token="") as client:
        everyone = client.users()
        assert len(everyone) == 1004 and everyone == sorted(everyone)
        assert everyone[0] == "broken"
        assert client.users(limit=3, after="user0998") == ["user0999", "user1000", "user1001"]
        assert client.users(after="user1001") == ["user1002"]
        broken = httpx.post(f"{service.url}/v1/users/broken/judge", json={"context": "q", "a": "x", "b": "y"})
        assert broken.status_code == 500 and broken.json()["error"]["type"] == "internal"
        assert "Traceback" not in broken.text and broken.headers["x-request-id"] == broken.json()["error"]["request_id"]
        assert client.persona("user0001").pairs_seen == 1   # the service goes on
        assert httpx.get(f"{service.url}/v1/users", headers={"Host": "attacker.example"}).status_code == 400
    assert f"request {broken.json()['error']['request_id']}" in service.log and "failed on a bug" in service.log


def test_retries_are_idempotent_and_a_restart_runs_the_pending_job(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    token = create_token(db, "acme")
    args = llm_args(lm)
    args[args.index("--debounce") + 1] = "3"
    with serve_api(db, args) as service, PersonaeClient(service.url, token=token) as client:
        first = client.add_preferences("u1", [pair(i) for i in range(4)])
        results = []
        workers = [threading.Thread(target=lambda: results.append(client.add_preferences("u1", [pair(i) for i in
                                                                                                 range(4)])))
                   for _ in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert all(r.added == [] and len(r.duplicates) == 4 and r.job_id is None for r in results)
        assert client.job(first.job_id).status == "pending"
        service.kill()                      # SIGKILL before the job was due
    with serve_api(db, llm_args(lm)) as service, PersonaeClient(service.url, token=token) as client:
        job = client.wait_job(first.job_id, timeout=60)
        assert job.status == "done" and job.result["action"] == "first-fit"
        state = client.persona("u1")
        assert state.pairs_seen == 4 and state.version == 1


def test_the_client_retries_a_restarting_service(tmp_path, lm) -> None:
    db = tmp_path / "s.db"
    token = create_token(db, "acme")
    with serve_api(db, llm_args(lm)) as service:
        url = service.url
        with PersonaeClient(url, token=token) as first:
            first.add_preferences("u1", [pair(0)])
    port = url.rsplit(":", 1)[1]
    client = PersonaeClient(url, token=token, retries=60, max_wait=1.0)
    result: list = []
    waiting = threading.Thread(target=lambda: result.append(client.persona("u1")))
    waiting.start()                          # nothing listens now: the client keeps trying
    time.sleep(0.5)
    with serve_api(db, ["--port", port, *llm_args(lm), "--cors-origin", "https://app.example"]) as again:
        waiting.join(60)
        preflight = httpx.options(f"{again.url}/v1/users/u1/judge", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = httpx.options(f"{again.url}/v1/users/u1/judge", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
    client.close()
    assert result and result[0].pairs_seen == 1


MARKER = "zz-private-marker-5512"


def _token_ids(db) -> dict[tuple[str, ...], str]:
    from personae.store import PersonaStore

    with PersonaStore(db, background=False) as store:
        return {t.scopes: t.id for t in store.tokens.list()}


def test_every_route_needs_its_scope_and_forgets_and_exports_are_audited(tmp_path, lm) -> None:
    from personae.store import PersonaStore

    db = tmp_path / "s.db"
    admin, reader = create_token(db, "acme", "--scope", "admin"), create_token(db, "acme", "--scope", "read")
    writer = create_token(db, "acme", "--scope", "write")
    ids = _token_ids(db)
    with serve_api(db, llm_args(lm)) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        def call(token: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
            return http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

        def refused(answer: httpx.Response, scope: str) -> None:
            assert answer.status_code == 403, answer.text
            error = answer.json()["error"]
            assert error["type"] == "forbidden" and f"'{scope}' scope" in error["message"], error
            assert error["request_id"] == answer.headers["x-request-id"]

        batch = {"preferences": [{**api_pair(i), "prompt": f"{MARKER} question {i}"} for i in range(4)]}
        refused(call(reader, "POST", "/v1/users/u1/preferences", batch), "write")
        added = call(writer, "POST", "/v1/users/u1/preferences", batch)
        assert added.status_code == 202, added.text   # write alone may add...
        job_id = added.json()["job_id"]
        refused(call(writer, "GET", f"/v1/jobs/{job_id}"), "read")   # ...but not read
        with PersonaeClient(service.url, token=reader) as client:
            assert client.wait_job(job_id, timeout=60).status == "done"
        reads = [("GET", "/v1/users", None), ("GET", "/v1/users/u1/preferences", None),
                 ("GET", "/v1/users/u1/persona", None), ("GET", "/v1/users/u1/persona/history", None),
                 ("GET", "/v1/users/u1/generation-prompt", None), ("GET", f"/v1/jobs/{job_id}", None),
                 ("POST", "/v1/users/u1/judge", {"context": "q", "a": "x", "b": "y"}),
                 ("POST", "/v1/users/u1/rank", {"context": "q", "candidates": ["x", "y"]})]
        for method, path, body in reads:
            assert call(reader, method, path, body).status_code == 200, path
            assert call(admin, method, path, body).status_code == 200, path   # admin does all read does
            refused(call(writer, method, path, body), "read")
        assert call(admin, "POST", "/v1/users/u1/preferences", batch).status_code == 200   # and all write does
        for token in (reader, writer):
            refused(call(token, "GET", "/v1/users/u1/export"), "admin")
            refused(call(token, "DELETE", "/v1/users/u1"), "admin")
        with PersonaeClient(service.url, token=reader) as client, pytest.raises(ServiceError) as caught:
            client.forget("u1")
        assert (caught.value.status, caught.value.kind) == (403, "forbidden") and "'admin'" in caught.value.message

        exported = call(admin, "GET", "/v1/users/u1/export")
        assert exported.status_code == 200 and exported.json()["user_id"] == "u1"
        forgotten = call(admin, "DELETE", "/v1/users/u1")
        assert forgotten.status_code == 200 and forgotten.json()["removed"]["preferences"] == 4
    with PersonaStore(db, background=False) as store:
        entries = store.for_tenant("acme").audit()
    # one row each, newest first, as the admin token (its id, never the secret) in the request that did it
    assert [(e.action, e.user_id, e.actor, e.request_id) for e in entries] == [
        ("forget", "u1", f"token {ids[('admin',)]}", forgotten.headers["x-request-id"]),
        ("export", "u1", f"token {ids[('admin',)]}", exported.headers["x-request-id"])]
    assert MARKER not in repr(entries) and admin not in repr(entries)


def test_private_ops_and_an_expired_token_refused_though_cached(tmp_path, lm) -> None:
    from personae.store import PersonaStore

    db = tmp_path / "s.db"
    reader, ops = create_token(db, "acme", "--scope", "read"), create_token(db, "acme", "--scope", "ops")
    with serve_api(db, llm_args(lm, "--private-ops", "--token-cache", "60")) as service, \
            httpx.Client(base_url=service.url, timeout=30) as http:
        def get(path: str, token: str | None = None) -> httpx.Response:
            return http.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})

        assert get("/healthz").status_code == 200   # liveness stays open
        for path in ("/metrics", "/readyz"):
            anonymous = get(path)
            assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "unauthorized", path
            lacking = get(path, reader)
            assert lacking.status_code == 403 and "'ops' scope" in lacking.json()["error"]["message"], path
            assert get(path, ops).status_code == 200, path
        assert "personae_http_requests_total" in get("/metrics", ops).text
        assert get("/v1/users", ops).json()["error"]["type"] == "forbidden"   # ops reads no user

        with PersonaStore(db, background=False) as store:   # a token that lives two seconds
            record, brief = store.tokens.create("acme", "brief", scopes=["ops"], expires_at=time.time() + 2.0)
        assert get("/metrics", brief).status_code == 200   # looked up now: cached for 60 s...
        while time.time() < record.expires_at - 0.3:
            assert get("/readyz", brief).status_code == 200
            time.sleep(0.1)
        while time.time() < record.expires_at + 0.05:
            time.sleep(0.05)
        late = get("/metrics", brief)   # ...but never past its expiry
        assert late.status_code == 401 and "expired" in late.json()["error"]["message"]
        assert get("/metrics", ops).status_code == 200


def test_the_schema_names_the_one_scope_of_each_operation() -> None:
    from personae.service import openapi_schema
    from personae.store import API_SCOPES

    schema = openapi_schema()
    needs = {f"{method.upper()} {path}": (op.get("security") or [{}])[0].get("HTTPBearer")
             for path, ops in schema["paths"].items() for method, op in ops.items()}
    assert needs.pop("GET /healthz") is None
    assert needs.pop("GET /metrics") == needs.pop("GET /readyz") == ["ops"]
    assert all(len(scopes) == 1 for scopes in needs.values()), needs
    assert needs["DELETE /v1/users/{user_id}"] == [API_SCOPES["forget"]] == ["admin"]
    assert needs["GET /v1/users/{user_id}/export"] == ["admin"]
    assert needs["POST /v1/users/{user_id}/preferences"] == ["write"]
    assert {s[0] for k, s in needs.items() if k not in ("DELETE /v1/users/{user_id}", "GET /v1/users/{user_id}/export",
                                                         "POST /v1/users/{user_id}/preferences")} == {"read"}
