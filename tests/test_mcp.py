"""The persona store as an MCP server, reached through the official SDK's own client.

Over stdio (``personae mcp`` as a child process, as a desktop agent launches it) and over
streamable HTTP (``/mcp`` on a live ``personae serve-api``, behind its bearer tokens), and by a
``dspy.ReAct`` agent whose tools come from ``dspy.Tool.from_mcp_tool``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

from mcp.client.client import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from helpers import stub_answer  # noqa: E402
from personae.service.mcp import TOOLS  # noqa: E402
from personae.testing import create_token, serve_api, stub_server, tokens  # noqa: E402

SECRET_KEY = "zq7Rkeyfor_the_mcp_stub_31337"


_answer = stub_answer


def _env(tmp_path: Path) -> dict[str, str]:
    """The stdio server's environment: no keys of ours; the sources under test (PYTHONPATH) kept."""
    kept = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    return {"DSPY_CACHEDIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", **kept}


@pytest.fixture
def lm():
    with stub_server(_answer) as stub:
        yield stub


def _model_args(api_base: str) -> list[str]:
    return ["--judge", "openai/stub-model", "--api-base", api_base, "--api-key", SECRET_KEY, "--no-cache",
            "--lm-retries", "0", "--max-attempts", "2", "--debounce", "0"]


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


def _data(result: Any) -> Any:
    assert not result.is_error, _text(result)
    return json.loads(_text(result))


def _choice(i: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": "u1", "id": f"evt-{i}", "prompt": f"question {i}", "chosen": f"ok {i}",
            "rejected": f"a much longer answer {i}", **extra}


async def _session_checks(client: Client) -> None:
    tools = await client.list_tools()
    assert [t.name for t in tools.tools] == [spec.name for spec in TOOLS]
    assert all(len(t.description or "") > 40 for t in tools.tools)   # descriptions an LLM can act on
    first = _data(await client.call_tool("record_choice", _choice(1)))
    assert first["added"] == ["evt-1"] and first["duplicates"] == []
    again = _data(await client.call_tool("record_choice", _choice(1)))
    assert again["added"] == [] and again["duplicates"] == ["evt-1"]   # a retry is stored once
    persona = _data(await client.call_tool("get_persona", {"user_id": "u1"}))
    assert persona["pairs_seen"] == 1 and persona["personalization"] == "memory"
    verdict = _data(await client.call_tool("judge_drafts", {"user_id": "u1", "prompt": "Plan a trip.",
                                                            "response_a": "Day 1: go.",
                                                            "response_b": "A very long essay on travel."}))
    assert verdict["preferred"] == "A" and 0 <= verdict["probability"] <= 1
    candidates = ["A long, long plan.", "Go.", "Mid plan."]
    ranked = _data(await client.call_tool("rank_drafts", {"user_id": "u1", "prompt": "Plan a trip.",
                                                          "candidates": candidates}))
    assert candidates[ranked["best"]] == "Go."
    unknown = await client.call_tool("get_persona", {"user_id": "nobody"})
    assert unknown.is_error and _text(unknown) == "not_found: no user 'nobody'"
    invalid = await client.call_tool("record_choice", {"user_id": "u1", "prompt": "p", "chosen": "", "rejected": "b"})
    assert invalid.is_error and _text(invalid).startswith("invalid_request: chosen: ")
    bad_id = await client.call_tool("get_persona", {"user_id": "no spaces allowed"})
    assert bad_id.is_error and _text(bad_id).startswith("invalid_request: user_id: String should match pattern")
    resource = await client.read_resource("persona://u1")
    assert json.loads(resource.contents[0].text)["user_id"] == "u1"
    prompt = await client.get_prompt("write_for_user", {"user_id": "u1", "request": "Plan a weekend."})
    assert "Plan a weekend." in prompt.messages[0].content.text
    for result in (first, again, persona, verdict, ranked):
        assert SECRET_KEY not in json.dumps(result)
    forgotten = _data(await client.call_tool("forget_user", {"user_id": "u1"}))
    assert forgotten["removed"]["preferences"] == 1
    gone = await client.call_tool("get_persona", {"user_id": "u1"})
    assert gone.is_error and "not_found" in _text(gone)


def _audit(db: Path, tenant: str) -> list[Any]:
    from personae.store import PersonaStore

    with PersonaStore(db, background=False) as store:
        return store.for_tenant(tenant).audit()


def test_over_stdio_with_the_sdks_client(tmp_path: Path, lm) -> None:
    personae = str(Path(sys.executable).parent / "personae")
    params = StdioServerParameters(command=personae, args=["mcp", "--store", str(tmp_path / "s.db"),
                                                          *_model_args(lm.api_base)],
                                   env=_env(tmp_path))

    async def main() -> None:
        async with Client(params) as client:
            await _session_checks(client)

    asyncio.run(main())
    [forgotten] = _audit(tmp_path / "s.db", "default")
    assert (forgotten.action, forgotten.user_id, forgotten.actor) == ("forget", "u1", "mcp (stdio)")


def test_every_tool_needs_its_store_methods_scope() -> None:
    from personae.store import API_SCOPES

    assert {spec.name: spec.scope for spec in TOOLS} == {
        "record_choice": "write", "get_persona": "read", "judge_drafts": "read", "rank_drafts": "read",
        "system_prompt": "read", "persona_history": "read", "forget_user": "admin"}
    assert all(spec.scope == API_SCOPES[spec.method] for spec in TOOLS)


@contextlib.asynccontextmanager
async def _http_client(url: str, token: str | None) -> AsyncIterator[Client]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        yield client


def test_over_http_on_the_service_behind_its_tokens(tmp_path: Path, lm) -> None:
    db = tmp_path / "s.db"
    acme, other = create_token(db, "acme", "--scope", "admin"), create_token(db, "other")   # admin does it all
    reader, writer = create_token(db, "acme", "--scope", "read"), create_token(db, "acme", "--scope", "write")
    with serve_api(db, _model_args(lm.api_base)) as service:
        url = f"{service.url}/mcp/"

        async def main() -> None:
            async with _http_client(url, acme) as client:
                await _session_checks(client)
                _data(await client.call_tool("record_choice", _choice(2)))
            async with _http_client(url, other) as client:   # another tenant sees none of acme's users
                hidden = await client.call_tool("get_persona", {"user_id": "u1"})
                assert hidden.is_error and "not_found" in _text(hidden)
            async with _http_client(url, reader) as client:   # read alone: no recording, no forgetting
                assert _data(await client.call_tool("get_persona", {"user_id": "u1"}))["pairs_seen"] == 1
                denied = await client.call_tool("record_choice", _choice(3))
                assert denied.is_error and _text(denied) == \
                    "forbidden: the bearer token lacks the 'write' scope record_choice needs"
                denied = await client.call_tool("forget_user", {"user_id": "u1"})
                assert denied.is_error and _text(denied).startswith("forbidden: ") and "'admin'" in _text(denied)
            async with _http_client(url, writer) as client:   # write alone: recording, and no reading
                assert _data(await client.call_tool("record_choice", _choice(3)))["added"] == ["evt-3"]
                denied = await client.call_tool("get_persona", {"user_id": "u1"})
                assert denied.is_error and _text(denied).startswith("forbidden: ") and "'read'" in _text(denied)
                assert (await client.call_tool("forget_user", {"user_id": "u1"})).is_error
                for read in (client.read_resource("persona://u1"),   # a resource and a prompt say why too
                             client.get_prompt("write_for_user", {"user_id": "u1", "request": "Plan a day."})):
                    with pytest.raises(MCPError, match="forbidden: the bearer token lacks the 'read' scope"):
                        await read

        asyncio.run(main())
        [forgotten] = _audit(db, "acme")   # the forget of the session checks, by the admin token, in its request
        [admin_id] = [line.split()[0] for line in tokens(db, "list", "--tenant", "acme").splitlines()
                      if line.split()[3] == "admin"]
        assert (forgotten.action, forgotten.actor) == ("forget", f"token {admin_id}") and forgotten.request_id
        assert "question" not in repr(forgotten) and acme not in repr(forgotten)
        import httpx

        # no token: refused before any MCP, as /v1 refuses
        refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
        assert SECRET_KEY not in service.log


def test_a_react_agent_records_choices_and_reads_the_persona(tmp_path: Path, lm) -> None:
    import dspy

    from personae.lm import ScriptedLM

    steps = iter([
        {"next_thought": "Record the first choice.", "next_tool_name": "record_choice",
         "next_tool_args": _choice(1)},
        {"next_thought": "Record the second choice.", "next_tool_name": "record_choice",
         "next_tool_args": _choice(2)},
        {"next_thought": "Read what the store knows.", "next_tool_name": "get_persona",
         "next_tool_args": {"user_id": "u1"}},
        {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
    ])

    def script(call: Any) -> dict[str, Any]:
        if "next_tool_name" in call.system:
            return next(steps)
        return {"reasoning": "The store has seen the user's choices.", "answer": "2 choices recorded"}

    personae = str(Path(sys.executable).parent / "personae")
    params = StdioServerParameters(command=personae, args=["mcp", "--store", str(tmp_path / "s.db"),
                                                          *_model_args(lm.api_base)],
                                   env=_env(tmp_path))

    async def main() -> Any:
        async with Client(params) as client:
            listed = await client.list_tools()
            tools = [dspy.Tool.from_mcp_tool(client, tool) for tool in listed.tools]
            agent = dspy.ReAct("request -> answer", tools=tools, max_iters=5)
            with dspy.context(lm=ScriptedLM(script)):
                prediction = await agent.acall(request="Remember which drafts u1 chose, then say what you know.")
            persona = _data(await client.call_tool("get_persona", {"user_id": "u1"}))
            return prediction, persona

    prediction, persona = asyncio.run(main())
    assert persona["pairs_seen"] == 2   # the agent's two calls reached the store
    observations = [v for k, v in prediction.trajectory.items() if k.startswith("observation")]
    assert '"pairs_seen": 2' in str(observations[2]) and prediction.answer == "2 choices recorded"
