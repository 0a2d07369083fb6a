"""``personae store VERB``: the operator's view of a store, as text and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.cli.main import main
from personae.data import PreferenceRecord, Turn
from personae.lm import ScriptedLM
from personae.store import PersonaStore, UpdatePolicy


def _answer(call):
    return {"reasoning": "the short one", "preferred": "A", "persona": "Wants short answers with a first step.",
            "revised_persona": "Wants short answers, revised."}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    pairs = [PreferenceRecord([Turn("user", f"question {i}")], f"ok {i}", f"a much longer answer {i}",
                              record_id=f"e{i}") for i in range(6)]
    with PersonaStore(path, lm=ScriptedLM(_answer), background=False, policy=UpdatePolicy(debounce_s=0)) as store:
        acme = store.for_tenant("acme")
        acme.add_preferences("ana", pairs)
        acme.add_preferences("ben", pairs[:2])
        acme.process_jobs()
    return path


def store(db: Path, capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["store", *argv, "--store", str(db), "--tenant", "acme"])
    out, err = capsys.readouterr()
    return code, out, err


def test_users_persona_history_and_jobs(db: Path, capsys) -> None:
    assert store(db, capsys, "users")[1].split() == ["ana", "ben"]
    assert store(db, capsys, "users", "--limit", "1", "--after", "ana")[1].split() == ["ben"]
    code, out, _ = store(db, capsys, "persona", "ana")
    assert code == 0 and "persona: Wants short answers" in out and "pairs_seen: 6" in out
    persona = json.loads(store(db, capsys, "persona", "ana", "--json")[1])
    assert persona["version"] == 1 and persona["personalization"] == "persona"
    history = json.loads(store(db, capsys, "history", "ana", "--json")[1])
    assert [v["version"] for v in history] == [1]
    jobs = json.loads(store(db, capsys, "jobs", "--json")[1])
    assert {j["user_id"] for j in jobs} == {"ana", "ben"} and all(j["status"] == "done" for j in jobs)
    assert json.loads(store(db, capsys, "jobs", "--status", "failed", "--json")[1]) == []
    code, _, err = store(db, capsys, "persona", "nobody")
    assert code == 2 and "nobody" in err
    assert "created_at: 20" in store(db, capsys, "jobs")[1]   # times as dates on a terminal


def test_a_store_that_is_not_there_is_not_created(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "typo.db"
    assert main(["store", "users", "--store", str(missing)]) == 2
    assert "no store at" in capsys.readouterr().err and not missing.exists()


def test_export_import_and_forget(db: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "judges"
    out.mkdir()
    code, text, _ = store(db, capsys, "export", "ana", "--out", str(out))
    assert code == 0 and text.split() == ["user_id:", "ana", "wrote:", str(out / "ana.json")]
    assert json.loads((out / "ana.json").read_text())["persona"].startswith("Wants short answers")
    code = main(["store", "import", str(out), "--store", str(db), "--tenant", "other", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == {"imported": ["ana"]}
    code, _, err = store(db, capsys, "forget", "ana")
    assert code == 2 and "--yes" in err
    removed = json.loads(store(db, capsys, "forget", "ana", "--yes", "--erase-now", "--json")[1])
    assert removed["removed"]["preferences"] == 6
    assert not any(b"question 5" in p.read_bytes() for p in db.parent.glob("s.db*"))   # ben has 0 and 1 only
    assert store(db, capsys, "users")[1].split() == ["ben"]
    code = main(["store", "users", "--store", str(db), "--tenant", "other"])
    assert code == 0 and capsys.readouterr().out.split() == ["ana"]   # the other tenant's import stays


def test_tokens_under_store_and_serve_api_are_one_command(db: Path, capsys) -> None:
    assert main(["store", "tokens", "create", "--tenant", "acme", "--store", str(db)]) == 0
    secret = capsys.readouterr().out.splitlines()[1]
    assert secret.startswith("pst_")
    assert main(["serve-api", "tokens", "list", "--store", str(db)]) == 0
    listed = capsys.readouterr().out
    assert "acme" in listed and "live" in listed and secret not in listed


def test_exports_and_forgets_from_the_cli_are_audited_as_cli(db: Path, tmp_path: Path, capsys) -> None:
    assert store(db, capsys, "audit", "--json")[1].strip() == "[]"
    assert store(db, capsys, "export", "ana", "--out", str(tmp_path))[0] == 0
    assert store(db, capsys, "forget", "ana", "--yes")[0] == 0
    code, out, _ = store(db, capsys, "audit", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["action"], r["user_id"], r["actor"], r["tenant"], r["request_id"]) for r in rows] == \
        [("forget", "ana", "cli", "acme", None), ("export", "ana", "cli", "acme", None)]
    assert "question" not in out and "answer" not in out   # ids and times, never the user's text
    assert json.loads(store(db, capsys, "audit", "--limit", "1", "--json")[1]) == rows[:1]
    assert "at: 20" in store(db, capsys, "audit")[1]   # times as dates on a terminal


def test_tokens_take_scopes_and_an_expiry(db: Path, capsys) -> None:
    from personae.store import PersonaStore

    def tokens(*argv: str) -> tuple[int, str, str]:
        code = main(["store", "tokens", *argv, "--store", str(db)])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = tokens("create", "--tenant", "acme", "--scope", "read", "--scope", "ops", "--expires", "30d")
    assert code == 0 and "scopes read,ops" in out and "expires 20" in out
    assert tokens("create", "--tenant", "acme", "--scope", "write,admin", "--name", "ci")[0] == 0
    assert "scopes read,write,admin, expires never" in tokens("create", "--tenant", "acme")[1]   # the default
    listed = tokens("list", "--tenant", "acme")[1].splitlines()
    assert [line.split()[2:4] for line in listed] == [["live", "read,ops"], ["live", "write,admin"],
                                                      ["live", "read,write,admin"]]
    assert "expires never  ci" in listed[1]
    with PersonaStore(db, background=False) as opened:
        first = opened.tokens.list("acme")[0]
    assert first.expires_at is not None and 29.9 < (first.expires_at - first.created_at) / 86400 < 30.1
    for bad, said in ((["--scope", "root"], "unknown token scope 'root'"), (["--expires", "soon"], "--expires takes"),
                      (["--expires", "2001-01-01"], "in the past"), (["--expires", "0s"], "a moment")):
        code, _, err = tokens("create", "--tenant", "acme", *bad)
        assert code == 2 and said in err, err


def test_expiry_spans_and_dates() -> None:
    from personae.cli._common import parse_expiry

    now = 1_800_000_000.0
    assert [parse_expiry(t, now=now) - now for t in ("90s", "15m", "12h", "30d", "1.5h")] == \
        [90, 900, 43200, 2592000, 5400]
    assert parse_expiry("2027-02-01", now=now) == 1801440000.0   # a date: its midnight UTC
    assert parse_expiry("2027-02-01T01:00:00+01:00", now=now) == 1801440000.0
