"""The store console in a real browser (Chromium through Playwright) against a real
``personae serve-api`` on 127.0.0.1, its judge a scripted OpenAI-compatible server."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import shot
from helpers import record, stub_answer
from personae.lm import get_lm
from personae.store import PersonaStore, UpdatePolicy
from personae.store._schema import jobs
from personae.testing import serve_api, stub_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLI = [sys.executable, "-c", "import sys; from personae.cli.main import main; sys.exit(main())"]
HOSTILE_PROMPT = "<script>window.__xss = 1</script><b>bold?</b>"
HOSTILE_CHOSEN = "<img src=x onerror=\"window.__xss = 2\">"


REVISIONS = itertools.count(1)


def _answer(body: dict[str, Any]) -> tuple[int, str]:
    """The scripted judge (shorter wins); each persona revision words the persona anew."""
    if "revised_persona" in body["messages"][0]["content"]:
        n = next(REVISIONS)
        return 200, json.dumps({"reasoning": "r", "revised_persona": f"Prefers short answers, revision {n}; "
                                                                       "dislikes padding."})
    return stub_answer(body)


def _populate(db: Path, api_base: str) -> dict[str, str]:
    """Tenant acme: alice (three versions), bob (one, and a failed job), mallory (HTML in her
    texts); tenant other: zed. Returns a token of each tenant (``acme``, ``other``), the id of
    acme's (``acme_id``), and a token of acme without the admin scope (``reader``)."""
    lm = get_lm("openai/stub-model", api_base=api_base, api_key="k", cache=False, num_retries=0)
    policy = UpdatePolicy(debounce_s=0.0, poll_s=0.05, min_pairs=4)
    with PersonaStore(db, lm=lm, policy=policy, background=False, tenant="acme") as acme:
        for start, n in ((0, 4), (4, 3), (7, 3)):
            acme.add_preferences("alice", [record(i, user="alice", chosen=f"ok {i}", rejected=f"a longer answer {i}")
                                           for i in range(start, start + n)])
            acme.process_jobs(include_waiting=True)
        acme.add_preferences("bob", [record(i, user="bob") for i in range(4)])
        acme.add_preferences("mallory", [record(0, user="mallory", prompt=HOSTILE_PROMPT, chosen=HOSTILE_CHOSEN,
                                                rejected="plain & simple")])
        acme.process_jobs(include_waiting=True)
        with acme._core.db.write() as conn:   # a job that failed, as a crashed update leaves it
            conn.execute(jobs.insert().values(id="f" * 32, tenant="acme", user_id="bob", status="failed",
                                              due_at=0.0, created_at=1.0, finished_at=2.0, attempts=3,
                                              error="the model timed out 3 times", kind="timeout"))
        other = acme.for_tenant("other")
        other.add_preferences("zed", [record(0, user="zed")])
        made, acme_token = acme.tokens.create("acme")
        other_token = acme.tokens.create("other")[1]
        reader = acme.tokens.create("acme", "reader", scopes=["read", "write"])[1]
    return {"acme": acme_token, "other": other_token, "acme_id": made.id, "reader": reader}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    db = tmp_path_factory.mktemp("console") / "store.db"
    with stub_server(_answer) as stub:
        tokens = _populate(db, stub.api_base)
        args = ["--judge", "openai/stub-model", "--api-base", stub.api_base, "--api-key", "k", "--no-cache",
                "--lm-retries", "0", "--max-attempts", "2", "--debounce", "0"]
        with serve_api(db, args) as service:
            yield {"url": service.url, **tokens, "service": service, "db": db, "api_base": stub.api_base}


def _audit(db: Path) -> list[tuple[str, str, str]]:
    """Tenant acme's audit log, newest first: (action, user id, actor)."""
    with PersonaStore(db, background=False, tenant="acme") as store:
        return [(e.action, e.user_id, e.actor) for e in store.audit()]


def _page(browser: Any, **options: Any) -> Any:
    page = browser.new_page(**options)
    page.set_default_timeout(15_000)
    return page


def _sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/console")
    assert page.url.endswith("/console/login")
    page.focus("#token")
    page.keyboard.type(token)   # sign-in from the keyboard
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/users"))


def test_sign_in_users_versions_chart_and_playground(browser: Any, served: dict[str, Any]) -> None:
    page = _page(browser, viewport={"width": 1280, "height": 900})
    url = served["url"]
    page.goto(f"{url}/console/users")
    assert page.url.endswith("/console/login")   # nothing without signing in
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    assert "unknown, revoked or expired" in page.inner_text("[role=alert]")
    shot(page, "console-sign-in")
    page.fill("#token", served["reader"])   # a live token of acme, without the admin scope
    page.click("button[type=submit]")
    assert "lacks the admin scope" in page.inner_text("[role=alert]") and page.url.endswith("/console/login")
    assert page.goto(f"{url}/console/users").url.endswith("/console/login")   # and no session came of it

    _sign_in(page, url, served["acme"])
    users = page.locator("#users tbody tr td:first-child").all_inner_texts()
    assert users == ["alice", "bob", "mallory"]   # zed belongs to the other tenant
    row = page.locator("#users tbody tr", has_text="bob").inner_text()
    assert "4" in row and "1" in row   # pairs, version, one failed job
    shot(page, "console-users")

    page.fill("#q", "ALI")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=ALI"))
    assert page.locator("#users tbody tr td:first-child").all_inner_texts() == ["alice"]

    page.click("text=alice")
    page.wait_for_url(re.compile(r"/console/user\?id=alice"))
    assert page.inner_text("#current-version") == "3"
    assert "revision 2" in page.inner_text("#current-persona")
    methods = page.locator("#versions-table tbody td:nth-child(2)").all_inner_texts()
    assert methods == ["first-fit", "incremental", "incremental"]
    drawn = page.get_attribute("#accuracy-chart", "data-drawn")
    assert drawn == "3"   # the band's two edges and the accuracy line
    points = page.evaluate("() => Chart.getChart(document.getElementById('accuracy-chart')).data.datasets[2].data")
    assert len(points) == 10 and all(0 <= p <= 1 for p in points)

    page.select_option("#a", "1")
    page.select_option("#b", "3")
    page.click("#diff-form button")
    page.wait_for_url(re.compile(r"a=1&b=3"))
    assert page.locator("#diff-text del").count() >= 1 and page.locator("#diff-text ins").count() >= 1
    assert "revision 2" in page.inner_text("#diff-text ins >> nth=0") + page.inner_text("#diff-text")
    evidence = page.locator("#evidence-3").inner_text()
    assert "learned 3 new pairs" in evidence and "right" in evidence
    shot(page, "console-user")

    page.fill("#prompt", "How do I boil an egg?")
    page.fill("#draft_1", "Boil it for nine minutes, then cool it in cold water and peel it carefully.")
    page.fill("#draft_2", "Nine minutes.")
    page.click("#playground-form button[type=submit]")
    page.wait_for_selector("#verdict")
    verdict = page.inner_text("#verdict")
    assert "Prefers draft 2" in verdict and "shorter wins" in verdict and "persona version 3" in verdict
    shot(page, "console-playground")

    page.check("input[name=mode][value=rank]")
    page.fill("#draft_3", "Nine.")
    page.click("#playground-form button[type=submit]")
    page.wait_for_selector("#ranking")
    assert "Best: draft 3" in page.inner_text("#ranking")

    with page.expect_download() as download:
        page.click("text=Download the user's judge")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["user_id"] == "alice" and "revision 2" in exported["persona"]
    assert _audit(served["db"])[0] == ("export", "alice", f"console token {served['acme_id']}")

    page.set_viewport_size({"width": 390, "height": 844})   # a phone: nothing wider than the screen
    page.goto(f"{url}/console/user?id=alice")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 391
    shot(page, "console-user-phone")
    page.close()


def test_text_from_users_is_shown_as_text(browser: Any, served: dict[str, Any]) -> None:
    page = _page(browser)
    _sign_in(page, served["url"], served["acme"])
    page.goto(f"{served['url']}/console/user?id=mallory")
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    text = page.inner_text("main")
    assert HOSTILE_PROMPT in text and HOSTILE_CHOSEN in text and "plain & simple" in text
    assert page.evaluate("() => window.__xss === undefined")   # neither the script nor the handler ran
    assert page.locator("main b").count() == 0 and page.locator("main img").count() == 0
    shot(page, "console-escaped")
    page.close()


def test_forget_behind_a_confirmation_and_the_user_is_gone(browser: Any, served: dict[str, Any]) -> None:
    page = _page(browser)
    url = served["url"]
    _sign_in(page, url, served["acme"])
    page.goto(f"{url}/console/user?id=bob")
    assert "timeout: the model timed out 3 times" in page.inner_text("#jobs-table")
    page.fill("#confirm", "bo")
    page.click("#forget-form button")
    assert "type the user id exactly" in page.inner_text("[role=alert]")
    assert page.inner_text("h1") == "bob"   # still there
    page.fill("#confirm", "bob")
    page.click("#forget-form button")
    page.wait_for_url(re.compile(r"/console/users"))
    assert "Forgot bob" in page.inner_text("[role=status]")
    assert _audit(served["db"])[0] == ("forget", "bob", f"console token {served['acme_id']}")
    assert "bob" not in page.locator("#users tbody").inner_text()
    shot(page, "console-forgotten")
    response = page.goto(f"{url}/console/user?id=bob")
    assert response is not None and response.status == 404
    assert "No such user" in page.inner_text("h1")
    api = httpx.get(f"{url}/v1/users/bob/persona", headers={"Authorization": f"Bearer {served['acme']}"})
    assert api.status_code == 404
    page.close()


def test_another_tenant_sees_only_its_own(browser: Any, served: dict[str, Any]) -> None:
    page = _page(browser)
    url = served["url"]
    _sign_in(page, url, served["other"])
    assert page.locator("#users tbody tr td:first-child").all_inner_texts() == ["zed"]
    response = page.goto(f"{url}/console/user?id=alice")
    assert response is not None and response.status == 404
    page.close()


def test_changes_need_the_sessions_token_and_this_origin(served: dict[str, Any]) -> None:
    url = served["url"]
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        lacking = client.post("/console/login", data={"token": served["reader"]})
        assert lacking.status_code == 403 and "set-cookie" not in lacking.headers
        assert "lacks the admin scope" in lacking.text
        signed = client.post("/console/login", data={"token": served["acme"]})
        assert signed.status_code == 303 and "HttpOnly" in signed.headers["set-cookie"]
        assert "SameSite=strict" in signed.headers["set-cookie"]
        page = client.get("/console/user", params={"id": "alice"})
        assert page.status_code == 200 and "Content-Security-Policy" in page.headers
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        no_token = client.post("/console/user/forget", data={"user_id": "alice", "confirm": "alice"})
        assert no_token.status_code == 403
        elsewhere = client.post("/console/user/forget", headers={"Origin": "https://evil.example"},
                                data={"user_id": "alice", "confirm": "alice", "csrf": csrf.group(1)})
        assert elsewhere.status_code == 403
        assert client.get("/console/user", params={"id": "alice"}).status_code == 200   # alice is still there
        assert client.get("/console/users").status_code == 200
        assert "spoofed" not in client.get("/console/users", params={"flash": "spoofed"}).text
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        # a tenant token is typed into the form, never taken from an address (logs and history keep those)
        linked = client.get("/console/login", params={"token": served["acme"]})
        assert linked.status_code == 200 and "set-cookie" not in linked.headers and 'name="token"' in linked.text
    assert httpx.get(f"{url}/console/users", follow_redirects=False).status_code == 303   # no cookie: sign in


def test_store_console_for_one_operator(browser: Any, served: dict[str, Any]) -> None:
    """``personae store console``: one tenant, on loopback, signed in by the address it prints."""
    argv = [*CLI, "store", "console", "--store", str(served["db"]), "--tenant", "acme", "--port", "0",
            "--model", "openai/stub-model", "--api-base", served["api_base"], "--no-cache"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        said: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            said.extend(process.stdout)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any("token=" in line for line in said) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            link = next(re.search(r"(http://127\.0\.0\.1:\d+)/console/login\?token=(\S+)", line)
                        for line in said if "token=" in line)
            assert link is not None, "".join(said)
            base, token = link.group(1), link.group(2)
            page = _page(browser)
            response = page.goto(f"{base}/console/login?token=wrong")
            assert response is not None and response.status == 401
            page.goto(link.group(0))
            page.wait_for_url(re.compile(r"/console/users$"))
            assert "alice" in page.inner_text("#users") and "tenant acme" in page.inner_text("header")
            shot(page, "store-console")
            page.goto(f"{base}/console/user?id=alice")
            with page.expect_download():
                page.click("text=Download the user's judge")
            assert _audit(served["db"])[0] == ("export", "alice", "console operator")
            page.close()
            assert token not in "".join(said[1:])   # the token is printed once, in the address
        finally:
            process.terminate()
            process.wait(30)
            reader.join(10)
