"""The persona store on real databases: an SQLite file, and a PostgreSQL server the suite starts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path

import dspy
import pytest
import sqlalchemy as sa

from helpers import record
from personae.data import PreferenceRecord, Turn
from personae.errors import ConfigError, DataError, LMCallError
from personae.lm import ScriptedLM
from personae.optimizers import PersonalizedJudge
from personae.store import AsyncPersonaStore, PersonaStore, UnknownUserError, UpdatePolicy, acting_as

SYNC = UpdatePolicy(debounce_s=0.0, poll_s=0.05)


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


class Script:
    """A scripted model: prefers the shorter response, writes and revises a persona, counts calls by task."""

    def __init__(self, *, prefer: str = "shorter") -> None:
        self.prefer = prefer
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.lm = ScriptedLM(self)

    def _count(self, task: str) -> None:
        with self.lock:
            self.counts[task] = self.counts.get(task, 0) + 1

    def __call__(self, call):
        if call.field("new_choices") is not None:
            self._count("revise")
            n = call.field("new_choices").count("Choice ")
            return {"reasoning": "r", "revised_persona": f"The user wants short answers (revised with {n} choices)."}
        if call.field("preference_history") is not None:
            self._count("synthesize")
            return {"reasoning": "r", "persona": "The user wants short answers."}
        self._count("judge")
        first, second = call.field("response_a"), call.field("response_b")
        short_first = len(first) <= len(second)
        pick_first = short_first if self.prefer == "shorter" else not short_first
        return {"reasoning": "shorter wins" if self.prefer == "shorter" else "longer wins",
                "preferred": "A" if pick_first else "B"}


def pair(i: int, user: str = "u1", *, prompt: str | None = None) -> PreferenceRecord:
    return record(i, prompt=prompt, chosen=f"ok {i}", rejected=f"a much longer answer number {i}", user=user)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "personae.db")
    return request.getfixturevalue("postgres_url")


def test_cold_start_first_fit_and_incremental_update(target) -> None:
    script = Script()
    with PersonaStore(target, lm=script.lm, policy=SYNC, background=False) as store:
        for unknown in (store.persona, store.generation_messages, store.history, store.forget):
            with pytest.raises(UnknownUserError, match="no user 'u1'"):
                unknown("u1")
        with pytest.raises(UnknownUserError):
            store.judge("u1", "question", "ok", "a long and winding answer")

        added = store.add_preferences("u1", [pair(0), pair(1)])
        assert added.added == ["r0", "r1"] and added.job_id
        assert "preferences" not in store.generation_messages("u1")[0]["content"]  # no persona yet
        assert store.process_jobs() == 1
        state = store.persona("u1")
        assert state.version is None and state.pairs_seen == 2 and state.personalization == "memory"
        assert state.prequential_judged == 2          # cold start judged by the memory judge
        verdict = store.judge("u1", "question", "ok", "a long and winding answer")
        assert verdict.personalization == "memory" and verdict.version is None and verdict.preferred == "A"
        assert verdict.probability == 1.0

        store.add_preferences("u1", [pair(2), pair(3)])
        store.process_jobs()
        state = store.persona("u1")
        assert state.version == 1 and state.method == "first-fit" and state.persona == "The user wants short answers."
        assert state.pairs_learned == 4 and state.val_accuracy is not None

        before = dict(script.counts)
        store.add_preferences("u1", [pair(4), pair(5)])
        store.process_jobs()
        calls = {k: script.counts.get(k, 0) - before.get(k, 0) for k in script.counts}
        # two prequential judgments, both right, so their reasoning is the verified trace: no
        # verification call, one revision, no synthesis, no demo search
        assert calls == {"judge": 2, "revise": 1, "synthesize": 0}
        state = store.persona("u1")
        assert state.version == 2 and state.method == "incremental" and "revised with 2 choices" in state.persona
        assert state.prequential_judged == 6 and state.prequential_accuracy == 1.0
        assert state.confidence == pytest.approx(0.6097, abs=1e-4)   # Wilson's lower bound for 6 of 6
        history = store.history("u1")
        assert [v.method for v in history] == ["first-fit", "incremental"]
        assert history[1].preference_ids == [f"r{i}" for i in range(6)]
        assert history[0].prequential_judged == 2   # the pairs that arrived while version 1 was current
        assert history[1].demos == history[0].demos
        verdict = store.judge("u1", "question", "a long and winding answer", "ok")
        assert (verdict.preferred, verdict.version, verdict.personalization) == ("B", 2, "persona")
        assert store.generation_messages("u1")[0]["content"].count("revised with 2 choices") == 1


def test_a_pair_the_judge_got_wrong_is_explained_anew_before_the_revision(tmp_path) -> None:
    script = Script()
    with PersonaStore(tmp_path / "s.db", lm=script.lm, policy=SYNC, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(4)])
        store.process_jobs()
        odd = record(50, chosen="a much longer answer that this user liked", rejected="ok")
        store.add_preferences("u1", [pair(4), odd])
        before = dict(script.counts)
        store.process_jobs()
        assert script.counts["judge"] - before["judge"] == 3   # two prequential, one verification of the odd one
        last = store.history("u1")[-1]
        assert last.method == "incremental" and "1 by their prequential judgment, 1 explained anew" in last.reason
        assert "1 of 2 new pairs verified" in last.reason       # the shorter-wins model cannot explain it


def test_adds_are_idempotent_by_client_id_and_by_content(target) -> None:
    with PersonaStore(target, lm=Script().lm, policy=SYNC, background=False) as store:
        first = store.add_preferences("u1", [pair(0), pair(1)])
        again = store.add_preferences("u1", [pair(1), pair(2)])
        assert first.added == ["r0", "r1"] and again.added == ["r2"] and again.duplicates == ["r1"]
        anonymous = PreferenceRecord([Turn("user", "q")], "a", "b")
        one = store.add_preferences("u1", [anonymous])
        two = store.add_preferences("u1", [PreferenceRecord([Turn("user", "q")], "a", "b")])
        assert one.added[0].startswith("sha256:") and two.duplicates == one.added and two.job_id is None
        assert len(store.preferences("u1")) == 4
        assert store.add_preferences("u1", [pair(0)]).job_id is None   # a retry queues no work


def test_bad_records_name_the_record_and_field(tmp_path) -> None:
    with PersonaStore(tmp_path / "s.db", policy=SYNC, background=False) as store:
        with pytest.raises(DataError, match=r"add_preferences\('u1'\), record 2, field 'rejected'"):
            store.add_preferences("u1", [pair(0), {"prompt": "q", "chosen": "a", "rejected": ""}])
        with pytest.raises(DataError, match="field 'user_id'"):
            store.add_preferences("u1", [pair(0, user="u2")])
        with pytest.raises(ConfigError, match="user_id"):
            store.add_preferences("", [pair(0)])
        with pytest.raises(UnknownUserError):   # nothing of a rejected batch is kept: no such user
            store.preferences("u1")


def test_forget_leaves_nothing_and_tenants_are_isolated(target) -> None:
    script = Script()
    with PersonaStore(target, lm=script.lm, policy=SYNC, background=False, tenant="acme") as acme:
        other = acme.for_tenant("globex")
        acme.add_preferences("u1", [pair(i) for i in range(5)])
        other.add_preferences("u1", [pair(i) for i in range(2)])
        acme.process_jobs()
        assert acme.persona("u1").version == 1 and other.persona("u1").version is None
        assert other.persona("u1").pairs_seen == 2 and acme.persona("u1").pairs_seen == 5
        assert other.users() == ["u1"] and acme.for_tenant("initech").users() == []
        with pytest.raises(UnknownUserError):
            acme.for_tenant("initech").history("u1")
        job = acme.add_preferences("u2", [pair(9, "u2")]).job_id
        assert acme.job(job) is not None and other.job(job) is None

        removed = acme.forget("u1")
        assert removed["preferences"] == 5 and removed["personas"] == 1 and removed["judgments"] == 5
        assert not acme.exists("u1")
        with pytest.raises(UnknownUserError):
            acme.persona("u1")
        with pytest.raises(UnknownUserError):
            acme.forget("u1")   # nothing left to forget
        assert other.persona("u1").pairs_seen == 2     # the other tenant's user of the same id stays
        engine = sa.create_engine(acme.database if "postgresql" not in acme.database else target)
        try:
            with engine.connect() as conn:
                for table in ("preferences", "personas", "judgments", "jobs"):
                    left = conn.execute(sa.text(f"select count(*) from {table} where tenant='acme' and user_id='u1'"))
                    assert left.scalar() == 0, table
        finally:
            engine.dispose()


def test_a_history_on_one_prompt_still_gets_a_persona_then_a_refit_once_it_can_validate(tmp_path) -> None:
    script = Script()
    with PersonaStore(tmp_path / "s.db", lm=script.lm, policy=SYNC, background=False) as store:
        store.add_preferences("u1", [pair(i, prompt="the same question") for i in range(6)])
        store.process_jobs()
        first = store.persona("u1")
        assert first.version == 1 and first.val_accuracy is None and first.persona
        assert len(store.export("u1").demos) == 3       # the first verified traces, no demo search
        store.add_preferences("u1", [pair(10 + i) for i in range(3)])
        store.process_jobs()
        second = store.history("u1")[-1]
        assert second.method == "refit" and "validation side" in second.reason and second.val_accuracy is not None


def test_a_falling_prequential_accuracy_triggers_a_refit(tmp_path) -> None:
    script = Script()
    policy = UpdatePolicy(debounce_s=0.0, min_judged=3, refit_margin=0.2)
    with PersonaStore(tmp_path / "s.db", lm=script.lm, policy=policy, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(6)])
        store.process_jobs()
        assert store.persona("u1").val_accuracy == 1.0
        flipped = [record(20 + i, chosen=f"a much longer answer number {i}", rejected=f"ok {i}") for i in range(4)]
        store.add_preferences("u1", flipped)       # the user's taste changed: the judge is now wrong
        store.process_jobs()
        last = store.history("u1")[-1]
        assert last.method == "refit" and "prequential accuracy" in last.reason
        assert store.history("u1")[0].prequential_accuracy == 0.0


def test_refit_every_n_pairs(tmp_path) -> None:
    policy = UpdatePolicy(debounce_s=0.0, refit_every=4)
    with PersonaStore(tmp_path / "s.db", lm=Script().lm, policy=policy, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(4)])
        store.process_jobs()
        for batch in ([4, 5], [6, 7]):
            store.add_preferences("u1", [pair(i) for i in batch])
            store.process_jobs()
        assert [v.method for v in store.history("u1")] == ["first-fit", "incremental", "refit"]


def test_export_and_import_round_trip_with_fitted_judges(tmp_path) -> None:
    script = Script()
    with PersonaStore(tmp_path / "a.db", lm=script.lm, policy=SYNC, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(5)])
        store.process_jobs()
        folder = tmp_path / "judges"
        folder.mkdir()
        exported = store.export("u1", folder)
        saved = PersonalizedJudge.load(folder / "u1.json")
        assert saved.persona == exported.persona == store.persona("u1").persona
        with pytest.raises(ConfigError, match="no persona yet"):
            store.add_preferences("u9", [pair(1, "u9")]) and store.export("u9")
    with PersonaStore(tmp_path / "b.db", lm=script.lm, policy=SYNC, background=False) as fresh:
        assert fresh.import_judges(folder) == ["u1"]
        state = fresh.persona("u1")
        assert state.version == 1 and state.method == "imported" and state.persona == saved.persona
        assert fresh.judge("u1", "q", "ok", "a much longer answer").personalization == "persona"


def test_a_failing_lm_fails_the_job_with_its_reason_and_the_store_keeps_serving(tmp_path) -> None:
    from dspy.utils import exceptions as dx

    broken = ScriptedLM(lambda call: dx.LMServerError("503 down"))
    policy = UpdatePolicy(debounce_s=0.0, job_attempts=1, prequential=False)
    with PersonaStore(tmp_path / "s.db", lm=broken, policy=policy, background=False) as store:
        job = store.add_preferences("u1", [pair(i) for i in range(4)]).job_id
        store.process_jobs()
        failed = store.job(job)
        assert failed.status == "failed" and failed.kind == "server" and "down" in failed.error
        assert store.persona("u1").pairs_seen == 4
        with pytest.raises(LMCallError) as caught:
            store.judge("u1", "q", "a", "b")
        assert caught.value.kind == "server"


def test_abstention_and_rank(tmp_path) -> None:
    script = Script()
    with PersonaStore(tmp_path / "s.db", lm=script.lm, policy=SYNC, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(4)])
        store.process_jobs()
        sure = store.judge("u1", "q", "ok", "a very long answer", abstain_below=0.9)
        assert not sure.abstained and sure.probability == 1.0
        before = script.counts["judge"]
        ranking = store.rank("u1", "q", ["a longer draft here", "ok", "the longest draft of them all", "hm ok"])
        assert ranking.best == 1 and ranking.comparisons == 3 and script.counts["judge"] - before == 6
        assert ranking.order[0] == 1 and ranking.order[-1] in (0, 2)
        with pytest.raises(ConfigError):
            store.rank("u1", "q", [])


def test_a_burst_of_adds_triggers_one_background_update(target) -> None:
    script = Script()
    policy = UpdatePolicy(debounce_s=1.5, poll_s=0.05)   # far above a pause between two adds on a busy machine
    with PersonaStore(target, lm=script.lm, policy=policy) as store:
        jobs = {store.add_preferences("u1", [pair(i)]).job_id for i in range(10)}
        assert len(jobs) == 1
        assert store.wait_idle(timeout=30)
        assert store.job(jobs.pop()).status == "done"
        assert [v.method for v in store.history("u1")] == ["first-fit"]
        assert script.counts["synthesize"] == 1


def test_the_async_store_has_the_same_methods(tmp_path) -> None:
    script = Script()

    async def main() -> None:
        store = AsyncPersonaStore(tmp_path / "s.db", lm=script.lm, policy=SYNC, background=False)
        try:
            await store.add_preferences("u1", [pair(i) for i in range(4)])
            await store.process_jobs()
            state, verdict = await asyncio.gather(store.persona("u1"), store.judge("u1", "q", "ok", "a longer one"))
            assert state.version == 1 and verdict.preferred == "A"
            assert len(await store.history("u1")) == 1
            assert (await store.forget("u1"))["preferences"] == 4
        finally:
            await store.close()

    loop = asyncio.new_event_loop()  # not asyncio.run: that would drop a loop another library set up
    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def test_the_schema_is_migrated_by_alembic_from_an_older_revision(tmp_path) -> None:
    from importlib.resources import files

    from alembic import command
    from alembic.config import Config

    path = tmp_path / "s.db"
    config = Config()
    config.set_main_option("script_location", str(files("personae.store") / "migrations"))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:   # a store made by the first release: revision 0001, no token table
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        assert "api_tokens" not in sa.inspect(engine).get_table_names()
        with PersonaStore(path, background=False) as store:
            assert store.ping() == "0003"
            store.add_preferences("x", [pair(0, "x")])
            assert json.loads(json.dumps(store.persona("x").__dict__))["pairs_seen"] == 1
        with engine.connect() as conn:
            assert conn.execute(sa.text("select version_num from alembic_version")).scalar() == "0003"
            assert conn.execute(sa.text("pragma journal_mode")).scalar() == "wal"
        assert {"api_tokens", "audit"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_tokens_are_stored_hashed_bound_to_a_tenant_and_revocable(target) -> None:
    with PersonaStore(target, background=False) as store:
        record, secret = store.tokens.create("acme", name="ci")
        _, other = store.tokens.create("globex")
        assert secret.startswith("pst_") and len(secret) > 40
        assert store.tokens.tenant_of(secret) == "acme" and store.tokens.tenant_of(other) == "globex"
        for wrong in ("", "pst_", secret + "x", secret[:-1], "Bearer " + secret, "x" * 5000):
            assert store.tokens.tenant_of(wrong) is None
        assert [t.id for t in store.tokens.list("acme")] == [record.id]
        engine = sa.create_engine(target if "postgresql" in target else f"sqlite:///{target}")
        try:
            with engine.connect() as conn:
                stored = conn.execute(sa.text("select token_hash from api_tokens where id = :i"), {"i": record.id})
                digest = stored.scalar()
        finally:
            engine.dispose()
        assert secret not in digest and len(digest) == 64
        assert store.tokens.revoke(record.id) and not store.tokens.revoke(record.id)
        assert store.tokens.tenant_of(secret) is None and store.tokens.tenant_of(other) == "globex"
        with pytest.raises(ConfigError):
            store.tokens.create("")


def test_a_token_made_before_scopes_keeps_every_scope_it_had(target) -> None:
    """A store at revision 0002 (tokens without scopes or expiry), with a token in it, migrates to
    0003: the token still works, now holding read, write and admin, and never expires."""
    from importlib.resources import files

    from alembic import command
    from alembic.config import Config

    url = target if "postgresql" in target else f"sqlite:///{target}"
    config = Config()
    config.set_main_option("script_location", str(files("personae.store") / "migrations"))
    engine = sa.create_engine(url)
    secret = "pst_" + "made-by-release-two" * 2
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
            conn.execute(sa.text("insert into api_tokens (id, tenant, name, token_hash, created_at) "
                                 "values ('old1', 'acme', 'ci', :h, 1.0)"),
                         {"h": hashlib.sha256(secret.encode()).hexdigest()})
        assert "audit" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with PersonaStore(target, background=False) as store:
        assert store.ping() == "0003"
        grant = store.tokens.grant_of(secret)
        assert grant is not None and (grant.id, grant.tenant, grant.scopes, grant.expires_at) == \
            ("old1", "acme", ("read", "write", "admin"), None)
        assert all(grant.allows(scope) for scope in ("read", "write", "admin")) and not grant.allows("ops")
        [listed] = store.tokens.list()
        assert (listed.name, listed.scopes, listed.expires_at, listed.revoked_at) == \
            ("ci", ("read", "write", "admin"), None, None)
        acme = store.for_tenant(grant.tenant)   # what the service does with it: the tenant's view
        acme.add_preferences("u1", [pair(0)])
        with acting_as(f"token {grant.id}"):
            assert acme.forget("u1")["preferences"] == 1
        assert [(e.action, e.actor) for e in acme.audit()] == [("forget", "token old1")]


def test_token_scopes_and_an_expiry_that_the_cache_never_outlives(target) -> None:
    from personae.store._tokens import grants

    with PersonaStore(target, background=False) as store:
        store.tokens.cache_s = 60.0   # far longer than the token lives
        record, secret = store.tokens.create("acme", "reader", scopes=["read"], expires_at=time.time() + 1.0)
        assert record.scopes == ("read",) and record.expires_at is not None
        with pytest.raises(ConfigError, match="at most 100 years"):   # far dates break, and mean no expiry
            store.tokens.create("acme", expires_at=time.time() + 200 * 365 * 86400)
        grant = store.tokens.grant_of(secret)
        assert grant is not None and grant.id == record.id and grant.allows("read")
        assert not grant.allows("write") and not grant.allows("admin") and not grant.allows("ops")
        assert store.tokens.cached_grant(secret) == (True, grant)   # cached now...
        deadline = time.monotonic() + 10
        while store.tokens.grant_of(secret) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.tokens.grant_of(secret) is None and store.tokens.tenant_of(secret) is None   # ...not past expiry
        assert time.time() >= record.expires_at
        [listed] = store.tokens.list("acme")
        assert listed.scopes == ("read",) and listed.expires_at == pytest.approx(record.expires_at)

        _, full = store.tokens.create("acme", scopes="admin,write")   # a comma list, in any order
        assert store.tokens.grant_of(full).scopes == ("write", "admin")
        assert store.tokens.create("acme")[0].scopes == ("read", "write", "admin")   # the default: as before scopes
        for bad in (["root"], [], "read,,nope"):
            with pytest.raises(ConfigError, match="scope"):
                store.tokens.create("acme", scopes=bad)
        with pytest.raises(ConfigError, match="future"):
            store.tokens.create("acme", expires_at=time.time() - 1)
    assert grants(["admin"], "read") and grants(["admin"], "write") and not grants(["admin"], "ops")
    assert not grants(["write"], "read") and grants(["ops"], "ops") and not grants(["read"], "write")


MARKER = "zz-private-marker-7781"


def test_exports_and_forgets_are_audited_without_user_text(target, tmp_path) -> None:
    script = Script()
    with PersonaStore(target, lm=script.lm, policy=SYNC, background=False, tenant="acme") as acme:
        other = acme.for_tenant("globex")
        acme.add_preferences("u1", [pair(i, prompt=f"{MARKER} question {i}") for i in range(5)])
        other.add_preferences("u1", [pair(0)])
        acme.process_jobs()
        acme.export("u1", tmp_path)   # plain Python: the actor is "python"
        with acting_as("cli"):
            acme.forget("u1")
        with pytest.raises(UnknownUserError), acting_as("cli"):
            acme.forget("u1")         # nothing forgotten: nothing audited
        entries = acme.audit()
        assert [(e.action, e.user_id, e.actor, e.tenant, e.request_id) for e in entries] == \
            [("forget", "u1", "cli", "acme", None), ("export", "u1", "python", "acme", None)]   # newest first
        assert entries[0].at >= entries[1].at and entries[0].id > entries[1].id
        assert MARKER not in json.dumps([e.__dict__ for e in entries])
        assert acme.audit(limit=1) == entries[:1] and other.audit() == []   # one tenant's log
        with acting_as("token abc", request_id="req-1"):
            asyncio.run(AsyncPersonaStore(other).forget("u1"))   # a worker thread keeps the actor
        assert [(e.actor, e.request_id) for e in other.audit()] == [("token abc", "req-1")]
        with pytest.raises(ConfigError):
            acme.audit(limit=0)


def test_a_forget_and_its_audit_row_are_one_transaction(tmp_path, monkeypatch) -> None:
    from personae.store import _audit

    with PersonaStore(tmp_path / "s.db", background=False) as store:
        store.add_preferences("u1", [pair(0)])

        def fail(*args: object) -> None:
            raise RuntimeError("the audit log is unwritable")

        monkeypatch.setattr(_audit, "write", fail)
        with pytest.raises(RuntimeError):
            store.forget("u1")
        assert store.preferences("u1")   # not forgotten without its audit row
        monkeypatch.undo()
        store.forget("u1")
        assert not store.exists("u1") and [e.action for e in store.audit()] == ["forget"]


def test_store_files_stay_beside_the_path(tmp_path: Path) -> None:
    PersonaStore(tmp_path / "sub" / "s.db", background=False).close()
    assert (tmp_path / "sub" / "s.db").exists()


# -- concurrency and crashes ------------------------------------------------------------------------


def _writer(target: str, worker: int, tenant: str = "default") -> None:
    """Adds 30 shared pairs (the same ids from every writer, in an order of its own) and 10 of its own."""
    import random

    with PersonaStore(target, lm=Script().lm, policy=SYNC, background=False, tenant=tenant) as store:
        shared = [pair(i, "shared") for i in range(30)]
        random.Random(worker).shuffle(shared)
        mine = [record(1000 * (worker + 1) + i, user="shared", chosen=f"w{worker} {i}") for i in range(10)]
        batch = shared + mine
        for start in range(0, len(batch), 4):
            store.add_preferences("shared", batch[start:start + 4])
            store.add_preferences(f"w{worker}", [pair(start, f"w{worker}")])


def _count(target: str, user: str) -> tuple[int, int]:
    with PersonaStore(target, policy=SYNC, background=False) as store:
        ids = [r.record_id for r in store.preferences(user)]
    return len(ids), len(set(ids))


@pytest.mark.parametrize("writers", [20, 50])
def test_concurrent_writers_from_threads_lose_and_double_nothing(target, writers) -> None:
    PersonaStore(target, background=False).close()
    threads = [threading.Thread(target=_writer, args=(target, k)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert _count(target, "shared") == (30 + 10 * writers, 30 + 10 * writers)
    assert all(_count(target, f"w{k}") == (10, 10) for k in range(writers))


def test_concurrent_writers_from_processes_lose_and_double_nothing(target) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_writer, args=(target, k)) for k in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert _count(target, "shared") == (70, 70)
    with PersonaStore(target, policy=SYNC, background=False) as store:   # one pending job per user, whoever added
        pending = sa.select(sa.func.count()).select_from(sa.table("jobs")).where(sa.text("status = 'pending'"))
        engine = sa.create_engine(target if "://" in target else f"sqlite:///{target}")
        try:
            with engine.connect() as conn:
                assert conn.execute(pending).scalar() == 5
        finally:
            engine.dispose()
        assert store.users() == ["shared", "w0", "w1", "w2", "w3"]


def _slow_update(target: str, started: str) -> None:
    """A store whose persona synthesis hangs, so that the update is under way when it is killed."""
    import time

    def script(call):
        if call.field("preference_history") is not None:
            Path(started).write_text("synthesizing")
            time.sleep(60)
        return Script()(call)

    policy = UpdatePolicy(debounce_s=0.0, poll_s=0.05, lease_s=1.0)
    store = PersonaStore(target, lm=ScriptedLM(script), policy=policy)
    store.add_preferences("u1", [pair(i) for i in range(5)])
    time.sleep(120)


def test_an_update_killed_mid_run_is_taken_up_on_restart(target, tmp_path) -> None:
    import multiprocessing
    import os
    import signal
    import time

    started = tmp_path / "started"
    child = multiprocessing.get_context("fork").Process(target=_slow_update, args=(target, str(started)))
    child.start()
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the update never started"
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    script = Script()
    with PersonaStore(target, lm=script.lm, policy=SYNC, background=False) as store:
        job = store.persona("u1").pending_job
        assert job is not None and store.job(job).status == "running"   # its worker is gone
        time.sleep(1.2)                                                   # the lease runs out
        assert store.process_jobs() == 1
        assert store.job(job).status == "done" and store.job(job).attempts == 2
        assert [v.version for v in store.history("u1")] == [1]
        assert store.persona("u1").pairs_learned == 5


# -- probabilities ----------------------------------------------------------------------------------


def test_probability_comes_from_token_logprobs_averaged_over_both_orders(tmp_path) -> None:
    """Over HTTP: a server that returns log-probabilities, favouring the first position."""
    import math
    import re

    from personae.lm import get_lm
    from personae.store import LLMJudgeBackend
    from personae.testing import stub_server

    def answer(body):
        user = body["messages"][-1]["content"]
        first = re.search(r"response_a ## \]\]\n(.*?)\n", user).group(1)
        p_first = 0.9 if first == "ok" else 0.3   # "ok" is liked, and the first position a little
        head = '{"reasoning": "short is better", "preferred": "'
        word = "A" if p_first >= 0.5 else "B"
        tokens = [{"token": head, "logprob": 0.0, "top_logprobs": []},
                  {"token": word, "logprob": math.log(max(p_first, 1 - p_first)),
                   "top_logprobs": [{"token": "A", "logprob": math.log(p_first)},
                                    {"token": "B", "logprob": math.log(1 - p_first)}]},
                  {"token": '"}', "logprob": 0.0, "top_logprobs": []}]
        return 200, head + word + '"}', tokens

    with stub_server(answer) as stub:
        lm = get_lm("openai/stub-model", api_base=stub.api_base, api_key="k", cache=False)
        backend = LLMJudgeBackend(lm, logprobs=True, memory=False)
        with PersonaStore(tmp_path / "s.db", backend=backend, policy=SYNC, background=False) as store:
            store.add_preferences("u1", [pair(0)])   # a known user without a persona: the default judge
            verdict = store.judge("u1", "q", "ok", "a long answer")
            # P(A) is 0.9 shown first and 1 - 0.3 shown second: 0.8 after averaging the orders
            assert verdict.preferred == "A" and verdict.probability == pytest.approx(0.8)
            assert verdict.personalization == "none" and not verdict.abstained
            assert store.judge("u1", "q", "ok", "x", abstain_below=0.85).abstained
        assert all(body.get("logprobs") is True and body.get("top_logprobs") == 5 for body in stub.requests)


def test_forgetting_a_user_while_an_update_runs_leaves_nothing(target) -> None:
    """The update finds its job gone when it writes, and writes nothing."""
    entered, release = threading.Event(), threading.Event()

    def script(call):
        if call.field("preference_history") is not None:
            entered.set()
            release.wait(30)
        return Script()(call)

    with PersonaStore(target, lm=ScriptedLM(script), policy=SYNC, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(4)])
        runner = threading.Thread(target=store.process_jobs)
        runner.start()
        assert entered.wait(30)
        store.forget("u1")
        release.set()
        runner.join(30)
        assert not store.exists("u1") and store.users() == []
        with pytest.raises(UnknownUserError):
            store.persona("u1")


def test_a_worker_that_lost_its_lease_writes_nothing(tmp_path) -> None:
    import time

    entered, release = threading.Event(), threading.Event()

    def slow(call):
        if call.field("preference_history") is not None and not release.is_set():
            entered.set()
            release.wait(30)
        return Script()(call)

    policy = UpdatePolicy(debounce_s=0.0, lease_s=0.3, poll_s=0.05)
    path = tmp_path / "s.db"
    with PersonaStore(path, lm=ScriptedLM(slow), policy=policy, background=False) as first:
        job = first.add_preferences("u1", [pair(i) for i in range(4)]).job_id
        runner = threading.Thread(target=first.process_jobs)
        runner.start()
        assert entered.wait(30)
        time.sleep(0.5)                      # its lease runs out: nothing renews it in this thread
        with PersonaStore(path, lm=Script().lm, policy=policy, background=False) as second:
            assert second.process_jobs() == 1                       # another worker takes the job up
            assert [v.version for v in second.history("u1")] == [1]
            release.set()
            runner.join(30)
            assert [v.version for v in second.history("u1")] == [1]  # the first worker wrote nothing
            assert second.job(job).status == "done"


def test_probability_of_a_reads_only_the_answer_token() -> None:
    import math

    from personae.programs import probability_of_a

    def token(text, *alternatives):
        return {"token": text, "logprob": 0.0,
                "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in alternatives]}

    assert probability_of_a({"content": [token("no field here "), token("A", ("A", 0.9))]}) is None
    assert probability_of_a(None) is None
    quoted = [token('{"reasoning": "the First one", "preferred": "'),
              token("B", ("B", 0.6), ("A", 0.2), ("Sure", 0.2)), token('"}')]
    assert probability_of_a({"content": quoted}) == pytest.approx(0.25)
    chat = [token("[[ ## reasoning ## ]]\nFirst is short\n\n[[ ## preferred ## ]]\n"), token("A")]
    assert probability_of_a({"content": chat}) == 1.0          # no alternatives sent: the word chosen


def test_pairs_added_while_an_update_runs_get_an_update_of_their_own(tmp_path) -> None:
    entered, release = threading.Event(), threading.Event()

    def script(call):
        if call.field("preference_history") is not None and not release.is_set():
            entered.set()
            release.wait(30)
        return Script()(call)

    with PersonaStore(tmp_path / "s.db", lm=ScriptedLM(script), policy=SYNC, background=False) as store:
        store.add_preferences("u1", [pair(i) for i in range(4)])
        runner = threading.Thread(target=store.process_jobs, kwargs={"limit": 1})
        runner.start()
        assert entered.wait(30)
        later = store.add_preferences("u1", [pair(4), pair(5)]).job_id
        release.set()
        runner.join(30)
        assert store.job(later).status == "pending" and store.persona("u1").pairs_learned == 4
        store.process_jobs()
        assert store.persona("u1").pairs_learned == 6 and store.history("u1")[-1].method == "incremental"


def test_the_debounce_never_delays_an_update_past_max_delay(tmp_path) -> None:
    import time

    policy = UpdatePolicy(debounce_s=100.0, max_delay_s=0.5)
    with PersonaStore(tmp_path / "s.db", lm=Script().lm, policy=policy, background=False) as store:
        job = store.add_preferences("u1", [pair(0)]).job_id
        assert store.add_preferences("u1", [pair(1)]).job_id == job     # still one job
        assert store.process_jobs() == 0                                   # not due yet
        time.sleep(0.6)
        assert store.process_jobs() == 1 and store.job(job).status == "done"


def test_the_reward_model_backend_combines_concurrent_calls_into_batches() -> None:
    import time

    from personae.store import RewardModelBackend

    class Model:
        """Scores a response by its length; each pass takes 30 ms; 'boom' fails its pass."""

        def __init__(self) -> None:
            self.passes: list[int] = []

        def score_batch(self, items):
            self.passes.append(len(items))
            time.sleep(0.03)
            if any(r == "boom" for _, _, r in items):
                raise RuntimeError("the model fell over")
            return [float(len(r)) for _, _, r in items]

    model = Model()
    backend = RewardModelBackend(model, max_batch=16)
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            results[i] = backend.compare(None, [], "q", "x" * (i + 1), "y" * (40 - i) if i != 7 else "boom")
        except RuntimeError as exc:
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 24 and sum(model.passes) == 48   # every response scored exactly once
    assert len(model.passes) < 24 and max(model.passes) <= 16   # combined, within the cap
    failed = [i for i, r in results.items() if isinstance(r, RuntimeError)]
    assert 7 in failed and len(failed) < 24   # only the calls that shared the failing pass
    for i, verdict in results.items():
        if i not in failed:   # each call got its own scores back: A is longer once i + 1 > 40 - i
            assert verdict.preferred == ("A" if i + 1 >= 40 - i else "B"), i
    model.passes.clear()   # a draft given twice is scored once, and both get its reward
    assert backend.scores(None, "q", ["ab", "abc", "ab", "ab"]) == [2.0, 3.0, 2.0, 2.0] and model.passes == [2]
    assert backend.compare(None, [], "q", "same", "same").probability == 0.5 and model.passes == [2, 1]


def test_redact_removes_registered_environment_and_key_shaped_secrets(monkeypatch) -> None:
    from personae.runs import describe_error, redact, register_secrets

    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "envsecretvalue12345")
    register_secrets("registeredvalue987", None, "")
    text = ("key envsecretvalue12345 and registeredvalue987; sk-abcdef123456789 Bearer pst_abcdefgh12345678 "
            "api_key=zzzz9999yyyy8888; the bearer token is unknown")
    clean = redact(text, ("passedvalue",))
    for secret in ("envsecretvalue12345", "registeredvalue987", "sk-abcdef", "pst_abcdefgh", "zzzz9999"):
        assert secret not in clean
    assert clean.endswith("the bearer token is unknown")   # ordinary words are left alone
    assert "registeredvalue987" not in describe_error(RuntimeError("upstream said registeredvalue987"))


def test_a_meter_without_entries_counts_but_keeps_no_list() -> None:
    from personae.lm import CostMeter

    kept, lean = CostMeter(), CostMeter(entries=False)
    for meter in (kept, lean):
        for _ in range(3):
            meter.add_usage("m", {"prompt_tokens": 5, "completion_tokens": 2})
    assert (lean.cost.lm_calls, lean.cost.prompt_tokens, lean.cost.completion_tokens) == (3, 15, 6)
    assert lean.cost == kept.cost and not lean.usage_data and len(kept.usage_data["m"]) == 3


def test_wait_job_waits_for_the_job_of_this_tenant(tmp_path) -> None:
    with PersonaStore(tmp_path / "s.db", lm=Script().lm, policy=SYNC) as store:
        job_id = store.add_preferences("u1", [pair(i) for i in range(4)]).job_id
        assert store.for_tenant("other").wait_job(job_id, timeout=1) is None   # not its job
        done = store.wait_job(job_id, timeout=60)
        assert done is not None and done.status == "done" and store.persona("u1").version == 1


def test_operator_reads_page_search_and_show_the_evidence(target) -> None:
    script = Script()
    with PersonaStore(target, lm=script.lm, policy=SYNC, background=False) as store:
        for user in ("a_1", "a%2", "ab", "b-3"):
            store.add_preferences(user, [pair(i, user) for i in range(5)])
        store.process_jobs(include_waiting=True)
        assert [u.user_id for u in store.user_summaries(search="A_")] == ["a_1"]   # any case; _ and % literal
        assert [u.user_id for u in store.user_summaries(search="%")] == ["a%2"]
        assert [u.user_id for u in store.user_summaries(limit=2)] == ["a%2", "a_1"]
        assert [u.user_id for u in store.user_summaries(limit=2, after="a_1")] == ["ab", "b-3"]
        for summary in store.user_summaries():   # the figures persona() gives, for a page in one go
            state = store.persona(summary.user_id)
            assert (summary.pairs_seen, summary.version, summary.prequential_judged, summary.prequential_accuracy) \
                == (state.pairs_seen, state.version, state.prequential_judged, state.prequential_accuracy)
            assert summary.interval is not None and summary.failed_jobs == 0
        evidence = store.evidence("ab")
        assert [e.pref_id for e in evidence] == [f"r{i}" for i in range(5)]
        assert all(e.judged and e.arrived_version == 0 and e.learned_version == 1 for e in evidence)
        assert all(e.judgment is not None and e.judgment["reasoning"] for e in evidence)
        assert {j.user_id for j in store.jobs(user_id="ab")} == {"ab"}

        # a judge imported with the pairs it was fitted on: they are its evidence, and not judged after it
        judge = PersonalizedJudge(user_id="imp", persona="Likes short answers.", n_train=4)
        store.import_judges([judge], preferences={"imp": [pair(i, "imp") for i in range(4)]})
        [version] = store.history("imp")
        assert version.method == "imported" and version.preference_ids == [f"r{i}" for i in range(4)]
        store.add_preferences("imp", [pair(i, "imp") for i in range(6)])   # four already there, two new
        store.process_jobs(include_waiting=True)
        evidence = store.evidence("imp")
        assert [e.judged for e in evidence] == [False] * 4 + [True] * 2
        assert [e.arrived_version for e in evidence] == [0] * 4 + [1] * 2
        assert store.persona("imp").prequential_judged == 2 and len(store.history("imp")) == 2
        with pytest.raises(ConfigError, match="without a judge"):
            store.import_judges([judge], preferences={"someone else": [pair(0, "someone else")]})
        store.add_preferences("Zed", [pair(0, "Zed")])   # pages by code point on both databases
        assert store.users(limit=1) == ["Zed"] and store.users(after="Zed", limit=1) == ["a%2"]
        assert [u.user_id for u in store.user_summaries(limit=2)] == ["Zed", "a%2"]


# -- what forget, crashes and races leave ---------------------------------------------------------

ERASE_MARKER = "quokka-7f3e-forget-me"


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes())


def test_forget_erases_the_users_text_from_the_database_files(target, tmp_path, request) -> None:
    """Rows gone is not enough: no byte of the forgotten user's text stays in the SQLite file or its
    WAL; on PostgreSQL, ``erase`` leaves none in the tables' data files."""
    marker = ERASE_MARKER.encode()
    with PersonaStore(target, lm=Script().lm, policy=SYNC, background=False) as store:
        store.add_preferences("keep", [pair(i, "keep") for i in range(3)])
        store.add_preferences("gone", [record(i, user="gone", prompt=f"{ERASE_MARKER} question {i}",
                                              chosen=f"ok {ERASE_MARKER}", rejected=f"a longer {ERASE_MARKER} {i}")
                                       for i in range(5)])
        store.process_jobs()
        assert store.persona("gone").version == 1
        if "://" in target:
            server = request.getfixturevalue("postgres_server")
            engine = sa.create_engine(target.replace("postgresql://", "postgresql+psycopg://", 1))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("CHECKPOINT")   # the rows reach the data files
                oid = conn.exec_driver_sql("select oid from pg_database where datname = current_database()").scalar()
                folder = server.base / "data" / "base" / str(oid)   # this test's database alone
                assert _files_holding(folder, marker), "the text never reached the files: the test proves nothing"
                store.forget("gone")
                store.erase()
                conn.exec_driver_sql("CHECKPOINT")
            engine.dispose()
        else:
            folder = tmp_path
            assert _files_holding(folder, marker)
            store.forget("gone")
        assert _files_holding(folder, marker) == []
        assert store.users() == ["keep"] and len(store.preferences("keep")) == 3
        store.add_preferences("keep", [pair(7, "keep")])   # the store goes on as before
        assert len(store.preferences("keep")) == 4


def test_durability_is_normal_or_full_on_sqlite_and_refused_on_postgresql(tmp_path, postgres_url) -> None:
    from personae.store._db import Database

    def synchronous(db: Database) -> int:
        with db.write() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

    normal, full = Database(tmp_path / "a.db"), Database(f"sqlite:///{tmp_path / 'b.db'}?durability=full")
    assert (normal.durability, synchronous(normal)) == ("normal", 1)
    assert (full.durability, synchronous(full)) == ("full", 2) and "?" not in full.name
    for db in (normal, full):
        db.close()
    with PersonaStore(tmp_path / "c.db", durability="full", background=False) as store:
        store.add_preferences("u1", [pair(1)])
        assert len(store.preferences("u1")) == 1
    with pytest.raises(ConfigError, match="durability is one of"):
        Database(tmp_path / "d.db", durability="paranoid")
    with pytest.raises(ConfigError, match="synchronous_commit"):
        Database(postgres_url, durability="full")


def _crashing_update(target: str, started: str) -> None:
    """A worker whose persona synthesis takes its process down (here: hangs until killed)."""
    import time

    def script(call):
        if call.field("preference_history") is not None:
            Path(started).write_text("synthesizing")
            time.sleep(60)
        return Script()(call)

    policy = UpdatePolicy(debounce_s=0.0, poll_s=0.05, lease_s=1.0, job_attempts=2)
    store = PersonaStore(target, lm=ScriptedLM(script), policy=policy)
    store.add_preferences("u1", [pair(i) for i in range(5)])   # a retry: stored already, the job stays
    time.sleep(120)


def test_a_job_that_takes_its_worker_down_job_attempts_times_ends_failed_with_that_reason(target, tmp_path) -> None:
    import multiprocessing
    import os
    import signal
    import time

    context = multiprocessing.get_context("fork")
    for attempt in (1, 2):
        started = tmp_path / f"started-{attempt}"
        child = context.Process(target=_crashing_update, args=(target, str(started)))
        child.start()
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), f"attempt {attempt} never started"
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    policy = UpdatePolicy(debounce_s=0.0, poll_s=0.05, lease_s=1.0, job_attempts=2)
    with PersonaStore(target, lm=Script().lm, policy=policy, background=False) as store:
        job_id = store.persona("u1").pending_job
        assert job_id is not None and store.job(job_id).attempts == 2
        time.sleep(1.2)                     # the second worker's lease runs out too
        assert store.process_jobs() == 0    # nothing is run a third time
        job = store.job(job_id)
        assert (job.status, job.kind, job.attempts) == ("failed", "interrupted", 2)
        assert "stopped before it finished, 2 times" in job.error
        assert store.persona("u1").version is None and store.persona("u1").pairs_seen == 5
        store.add_preferences("u1", [pair(9)])   # a new pair queues a new job, which runs
        assert store.process_jobs() == 1 and store.persona("u1").version == 1


def _racer(target: str, log: str, start_at: float) -> None:
    """Waits for the start, then runs every due job it can claim, logging each synthesis it makes."""
    import os
    import time

    def script(call):
        if call.field("preference_history") is not None:
            with open(log, "a") as out:
                out.write(f"{os.getpid()} {call.field('preference_history').count('Choice')}\n")
            time.sleep(0.2)   # long enough for the others to try the same job
        return Script()(call)

    with PersonaStore(target, lm=ScriptedLM(script), policy=SYNC, background=False) as store:
        while time.time() < start_at:
            time.sleep(0.005)
        store.process_jobs()


def test_processes_racing_for_jobs_never_run_one_twice(target, tmp_path) -> None:
    import multiprocessing
    import time

    users = [f"r{k}" for k in range(6)]
    with PersonaStore(target, lm=Script().lm, policy=SYNC, background=False) as store:
        for user in users:
            store.add_preferences(user, [pair(i, user) for i in range(5)])
        jobs = [store.persona(user).pending_job for user in users]
    log = tmp_path / "synth.log"
    start_at = time.time() + 3.0
    context = multiprocessing.get_context("fork")
    racers = [context.Process(target=_racer, args=(target, str(log), start_at)) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(120)
    assert [r.exitcode for r in racers] == [0, 0, 0, 0]
    runs = log.read_text().splitlines()
    assert len(runs) == len(users), runs              # one synthesis per user's job, never two
    assert len({line.split()[0] for line in runs}) > 1   # the processes did share the work
    with PersonaStore(target, policy=SYNC, background=False) as store:
        assert all(store.job(job).status == "done" and store.job(job).attempts == 1 for job in jobs)
        assert all(store.persona(user).version == 1 for user in users)


def test_a_busy_answer_sqlite_gives_without_waiting_is_waited_out(tmp_path) -> None:
    """SQLite answers "database is locked" at once in a few cases its busy handler does not
    cover; a write transaction then waits and tries again instead of failing."""
    import sqlite3

    from personae.store import _db

    with PersonaStore(tmp_path / "busy.db", background=False) as store:
        engine = store._core.db._writer
        failures = {"left": 3}

        @sa.event.listens_for(engine, "begin", insert=True)   # before BEGIN IMMEDIATE, as SQLite refuses it
        def _refuse(conn) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))

        store.add_preferences("u1", [pair(1)])
        assert failures["left"] == 0 and len(store.preferences("u1")) == 1
        calls = {"n": 0}

        def always_locked() -> None:
            calls["n"] += 1
            raise sqlite3.OperationalError("database is locked")

        before = _db.BUSY_TIMEOUT_S
        _db.BUSY_TIMEOUT_S = 0.3
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):   # not forever: up to the timeout
                _db._waiting_out_busy(always_locked, "a test")
        finally:
            _db.BUSY_TIMEOUT_S = before
        assert calls["n"] > 3
        with pytest.raises(sqlite3.OperationalError, match="no such table"):   # other errors at once
            _db._waiting_out_busy(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")), "t")


def test_a_forget_whose_erasure_readers_hold_off_says_so_and_a_retry_finishes_it(tmp_path, monkeypatch) -> None:
    """A reader holding an old snapshot keeps the WAL: forget then fails as busy (the service's 503,
    which clients retry) after the rows went; forgetting again, once the reader is done, erases."""
    import sqlite3

    from personae.store import _db

    path = tmp_path / "held.db"
    with PersonaStore(path, background=False) as store:
        store.add_preferences("gone", [record(i, user="gone", prompt=f"{ERASE_MARKER} {i}") for i in range(3)])
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("select count(*) from preferences").fetchone()[0] == 3   # a snapshot, held
        monkeypatch.setattr(_db, "BUSY_TIMEOUT_S", 1.5)
        with pytest.raises(sa.exc.OperationalError, match="readers kept the WAL"):
            store.forget("gone")
        assert not store.exists("gone")               # the rows went, in their own transaction
        store.add_preferences("other", [pair(1, "other")])   # writers were not held off meanwhile
        reader.execute("COMMIT")
        reader.close()
        with pytest.raises(UnknownUserError):
            store.forget("gone")                      # nothing left to forget, and the erasure is done
        assert _files_holding(tmp_path, ERASE_MARKER.encode()) == []
