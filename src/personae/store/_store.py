"""The persona store: preferences in, always-current personas and judges out."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dspy
import sqlalchemy as sa

from personae.data import PreferenceRecord, Turn
from personae.errors import ConfigError, DataError, NoPersonaError, PersonaeError, UnknownUserError
from personae.evaluation import wilson_interval
from personae.programs import PersonalizedJudge, Verdict, judge_path
from personae.runs import describe_error, failure_kind
from personae.signatures import generation_system_prompt
from personae.store import _audit
from personae.store._audit import AuditEntry
from personae.store._backends import JudgeBackend, LLMJudgeBackend
from personae.store._db import Database
from personae.store._jobs import Job, JobQueue, UpdateWorker
from personae.store._policy import UpdatePolicy
from personae.store._schema import MAX_ID_CHARS, jobs, judgments, personas, preferences
from personae.store._schema import check_id as _check_id
from personae.store._tokens import AccessTokens
from personae.store._updates import Updater, load_version

__all__ = ["AddResult", "AsyncPersonaStore", "PersonaState", "PersonaStore", "PersonaVersion", "PreferenceEvidence",
           "Ranking", "UnknownUserError", "UserSummary", "content_hash"]

logger = logging.getLogger(__name__)

MEMORY_PAIRS = 50  # cold start: the memory judge reads at most this many recent preferences
MAX_RANK_CANDIDATES = 64


@dataclass(frozen=True)
class AddResult:
    """What an add did: the preference ids stored now, those already there, the update job."""

    added: list[str]
    duplicates: list[str]
    job_id: str | None


@dataclass(frozen=True)
class PersonaState:
    """A user's current persona and how far to trust it.

    ``prequential_accuracy`` is how often the store's judge was right on this user's pairs
    before learning from them (``prequential_judged`` of them; unscored ones count wrong), and
    ``confidence`` the lower end of its 95% Wilson interval (None before any judgment).
    ``personalization`` says what a judgment uses now: ``persona``, ``memory`` (the raw
    preferences, before the first persona) or ``none``.
    """

    user_id: str
    persona: str
    version: int | None
    pairs_seen: int
    pairs_learned: int
    prequential_accuracy: float | None
    prequential_judged: int
    confidence: float | None
    personalization: str
    method: str | None = None
    val_accuracy: float | None = None
    updated: str | None = None
    pending_job: str | None = None

    def generation_messages(self) -> list[dict[str, str]]:
        """A system prompt (as a one-message list) to write responses this user prefers (the plain
        prompt before the first persona)."""
        return [{"role": "system", "content": generation_system_prompt(self.persona)}]


@dataclass(frozen=True)
class PersonaVersion:
    """One stored persona version: its text, how it was made, what it cost, how it did since."""

    version: int
    persona: str
    method: str              # first-fit | incremental | refit | imported
    reason: str
    preference_ids: list[str]
    demos: int
    val_accuracy: float | None
    cost: dict[str, Any]
    created: str
    prequential_judged: int = 0
    prequential_accuracy: float | None = None


@dataclass(frozen=True)
class Ranking:
    """Best-of-n: ``order`` lists candidate indices best first; ``scores`` are rewards (reward
    model) or wins in a knockout (LLM judge), per candidate; ``comparisons`` judged pairs."""

    best: int
    order: list[int]
    scores: list[float]
    comparisons: int
    personalization: str
    version: int | None
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass(frozen=True)
class UserSummary:
    """One user at a glance (an operator's list): pairs seen, the current version and when it was
    made, prequential accuracy with its 95% Wilson interval, and failed update jobs."""

    user_id: str
    pairs_seen: int
    version: int | None
    updated: str | None
    prequential_judged: int
    prequential_correct: int
    prequential_accuracy: float | None
    interval: tuple[float, float] | None
    failed_jobs: int


@dataclass(frozen=True)
class PreferenceEvidence:
    """A stored preference with what became of it: ``arrived_version`` was the persona version
    current when it arrived (0: none yet), which judged it before any version learned from it
    (``judged``; ``correct`` None when that judgment is unscored, ``judgment`` the row with its
    reasoning or failure), and ``learned_version`` the version that learned from it (None: not yet)."""

    pref_id: str
    record: PreferenceRecord
    arrived_version: int
    learned_version: int | None
    judged: bool
    correct: bool | None
    judgment: dict[str, Any] | None
    judged_at: str | None


def _stored(verdict: Verdict, version: int | None, abstained: bool = False) -> Verdict:
    """A backend's verdict as the store answers it: with the persona version and abstention."""
    return Verdict(verdict.preferred, verdict.reasoning, probability=verdict.probability, version=version,
                   personalization=verdict.get("personalization", "persona"), abstained=abstained)


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def content_hash(record: PreferenceRecord) -> str:
    """What identifies a pair without a client id: its conversation and both responses."""
    text = json.dumps({"context": [[t.role, t.content] for t in record.context], "chosen": record.chosen,
                       "rejected": record.rejected}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_record(item: PreferenceRecord | Mapping[str, Any], user_id: str, source: str, index: int) -> PreferenceRecord:
    if isinstance(item, Mapping):
        data = dict(item)
        if "context" not in data and isinstance(data.get("prompt"), str):
            data["context"] = [{"role": "user", "content": data.pop("prompt")}]
        try:
            item = PreferenceRecord.from_dict(data)
        except DataError as exc:
            raise DataError(exc.message, source=source, record=index, field=exc.field) from None
    elif not isinstance(item, PreferenceRecord):
        raise DataError(f"expected a PreferenceRecord, got {type(item).__name__}", source=source, record=index)
    if item.user_id not in (None, "", user_id):
        raise DataError(f"the record belongs to user {item.user_id!r}, not {user_id!r}", source=source,
                        record=index, field="user_id")
    for name in ("chosen", "rejected"):
        if not isinstance(getattr(item, name), str) or not getattr(item, name).strip():
            raise DataError("expected a non-empty string", source=source, record=index, field=name)
    if not item.context or not all(isinstance(t, Turn) and isinstance(t.content, str) for t in item.context) \
            or not item.context[-1].content.strip():
        raise DataError("expected a conversation ending with a non-empty turn", source=source, record=index,
                        field="context")
    if item.record_id and len(item.record_id) > MAX_ID_CHARS["pref_id"]:
        raise DataError(f"a client id is at most {MAX_ID_CHARS['pref_id']} characters", source=source,
                        record=index, field="record_id")
    return replace(item, user_id=user_id)


class _Core:
    """What every tenant view of one store shares: database, backend, updater, worker, caches."""

    def __init__(self, target: str | os.PathLike[str], lm: dspy.BaseLM | None, backend: JudgeBackend | None,
                 policy: UpdatePolicy, background: bool, durability: str | None = None) -> None:
        self.db = Database(target, durability=durability)
        self.policy = policy
        if lm is None and backend is None:
            lm = dspy.settings.lm  # the LM configured in DSPy, when the caller named none
        self.lm = lm if lm is not None else (backend.lm if backend is not None else None)
        self.backend = backend if backend is not None else (LLMJudgeBackend(lm, memory=policy.memory_judge)
                                                            if lm is not None else None)
        self.queue = JobQueue(self.db, policy)
        self.tokens = AccessTokens(self.db)
        self.updater = Updater(self.db, self.backend, self.lm, policy, self.queue) if self.backend is not None \
            else None
        self.fitted: dict[tuple[int, float], PersonalizedJudge] = {}  # by persona row id and its time
        self.forgotten = 0   # forgets so far: a judge decoded before one is not cached after it
        self.lock = threading.Lock()
        self.worker: UpdateWorker | None = None
        if background and self.updater is not None:
            self.worker = UpdateWorker(self.queue, lambda job: self.run_job(job, raise_bugs=False), policy)
            self.worker.start()

    def run_job(self, job: Job, *, raise_bugs: bool) -> None:
        assert self.updater is not None
        try:
            result = self.updater.update(job.tenant, job.user_id, job)
        except Exception as exc:
            retried = self.queue.fail(job, exc)
            bug = not isinstance(exc, PersonaeError) and failure_kind(exc) is None
            if bug:
                logger.exception("update job %s of %s/%s failed on a bug", job.id, job.tenant, job.user_id)
                if raise_bugs:
                    raise
            else:
                logger.warning("update job %s of %s/%s failed%s: %s", job.id, job.tenant, job.user_id,
                               " (will retry)" if retried else "", describe_error(exc))
            return
        self.queue.finish(job, result)  # pairs added meanwhile queued a job of their own (enqueue)

    def judge_of(self, conn: sa.Connection, row: Any) -> PersonalizedJudge:
        """The judge of a persona row (``id``, ``created_at``, ``version``, ``user_id``), decoded once."""
        key = (int(row.id), float(row.created_at))
        with self.lock:
            found = self.fitted.get(key)
            generation = self.forgotten
        if found is None:
            data = conn.execute(sa.select(personas.c.judge).where(personas.c.id == row.id)).scalar_one()
            found = PersonalizedJudge.from_dict(data, source=f"persona version {row.version} of {row.user_id}")
            with self.lock:
                if len(self.fitted) > 10000:
                    self.fitted.clear()
                if generation == self.forgotten:   # no forget since it was read: the judge may be kept
                    self.fitted[key] = found
        return found

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.db.close()


class PersonaStore:
    """Preferences in, personas and judges out, for an application's users.

    ::

        store = PersonaStore("personae.db", lm=get_lm("openai/gpt-4o-mini"))   # or a postgresql+psycopg:// URL
        store.add_preferences("u1", [PreferenceRecord([Turn("user", q)], chosen=a, rejected=b)])
        store.judge("u1", q, draft_1, draft_2).preferred        # "A" or "B", with .probability
        store.generation_messages("u1")                         # a system prompt for this user

    ``target`` is an SQLite file (created with its schema, WAL mode) or a database URL. ``lm``
    writes personas; ``backend`` judges (default: an :class:`LLMJudgeBackend` on ``lm``; or a
    :class:`RewardModelBackend`). Every user lives in a tenant (``tenant``, or a view from
    :meth:`for_tenant`). With ``background`` (the default) update jobs run on worker threads;
    without, :meth:`process_jobs` runs them. Thread-safe; several processes may share the
    database. See :class:`UpdatePolicy` for how personas are kept current. ``durability``
    (SQLite: ``normal``, the default, or ``full``; also ``?durability=full`` in the URL) says
    whether an acknowledged write survives a power cut as well as a crash of the process.
    """

    def __init__(self, target: str | os.PathLike[str] = "personae.db", *, lm: dspy.BaseLM | None = None,
                 backend: JudgeBackend | None = None, tenant: str = "default", policy: UpdatePolicy | None = None,
                 background: bool = True, durability: str | None = None, _core: _Core | None = None) -> None:
        self.tenant = _check_id("tenant", tenant)
        self._core = _core or _Core(target, lm, backend, policy or UpdatePolicy(), background, durability)
        self._owner = _core is None

    # -- lifecycle ----------------------------------------------------------------------
    def for_tenant(self, tenant: str) -> PersonaStore:
        """The same store seen by another tenant: it never sees this tenant's users."""
        return PersonaStore(self._core.db.name, tenant=tenant, _core=self._core)

    @property
    def policy(self) -> UpdatePolicy:
        return self._core.policy

    @property
    def backend(self) -> JudgeBackend | None:
        return self._core.backend

    @property
    def database(self) -> str:
        """The database, as a URL without its password."""
        return self._core.db.name

    @property
    def tokens(self) -> AccessTokens:
        """The bearer tokens of the HTTP service (``personae serve-api tokens``), for every tenant."""
        return self._core.tokens

    def ping(self) -> str:
        """Check that the database answers and its schema is current; returns the revision."""
        db = self._core.db
        revision = db.revision()
        if revision != db.head:
            raise ConfigError(f"the store's schema is at revision {revision}, not {db.head}")
        return str(revision)

    def job_counts(self) -> dict[str, int]:
        """How many update jobs of every tenant are pending, running, done and failed."""
        with self._core.db.read() as conn:
            rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        counts = dict.fromkeys(("pending", "running", "done", "failed"), 0)
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def close(self) -> None:
        """Stop the update workers (running jobs finish) and close the database connections."""
        if self._owner:
            self._core.close()

    def __enter__(self) -> PersonaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- preferences ----------------------------------------------------------------------
    def add_preferences(self, user_id: str, records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> AddResult:
        """Store a user's new preferences and queue the update they call for.

        Idempotent: a record's ``record_id`` is its client id, else its content hash names it;
        a preference already stored is reported in ``duplicates`` and changes nothing.
        """
        user_id = _check_id("user_id", user_id)
        source = f"add_preferences({user_id!r})"
        rows = [_as_record(item, user_id, source, index) for index, item in enumerate(records, 1)]
        db, now = self._core.db, time.time()
        job_id = None
        with db.write() as conn:
            db.lock(conn, "preferences", self.tenant, user_id)
            current = conn.execute(sa.select(sa.func.max(personas.c.version)).where(
                personas.c.tenant == self.tenant, personas.c.user_id == user_id)).scalar() or 0
            added, duplicates = self._insert(conn, user_id, rows, now, arrived=current)
            if added and self._core.updater is not None:
                job_id = self._core.queue.enqueue(conn, self.tenant, user_id)
        if job_id is not None and self._core.worker is not None:
            self._core.worker.wake()
        return AddResult(added, duplicates, job_id)

    def _insert(self, conn: sa.Connection, user_id: str, rows: Sequence[PreferenceRecord], now: float, *,
                arrived: int, learned: int | None = None) -> tuple[list[str], list[str]]:
        """Insert preference rows (those already stored change nothing); the ids added and the
        duplicates. With ``learned``, the rows (new or not yet learned) are marked learned by it."""
        db = self._core.db
        added: list[str] = []
        duplicates: list[str] = []
        for record in rows:
            digest = content_hash(record)
            pref_id = record.record_id or f"sha256:{digest[:40]}"
            inserted = conn.execute(db.insert(preferences).values(
                tenant=self.tenant, user_id=user_id, pref_id=pref_id, content_hash=digest,
                record={**record.to_dict(), "record_id": pref_id}, created_at=now, arrived_version=arrived,
                learned_version=learned).on_conflict_do_nothing().returning(preferences.c.id)).first()
            (added if inserted is not None else duplicates).append(pref_id)
        if learned is not None and duplicates:
            conn.execute(preferences.update().where(
                preferences.c.tenant == self.tenant, preferences.c.user_id == user_id,
                preferences.c.pref_id.in_(duplicates), preferences.c.learned_version.is_(None))
                .values(learned_version=learned))
        return added, duplicates

    def preferences(self, user_id: str) -> list[PreferenceRecord]:
        """The user's stored preferences, in the order they arrived (:class:`UnknownUserError`
        for a user the store holds nothing on)."""
        with self._core.db.read() as conn:
            rows = conn.execute(sa.select(preferences.c.record).where(
                preferences.c.tenant == self.tenant, preferences.c.user_id == user_id)
                .order_by(preferences.c.id)).scalars().all()
        if not rows and not self.exists(user_id):
            raise UnknownUserError(user_id, self.tenant)
        return [PreferenceRecord.from_dict(r) for r in rows]

    def users(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """The users of this tenant that have preferences or personas, in id order: at most
        ``limit`` of them, those after ``after`` (to page through many)."""
        with self._core.db.read() as conn:
            return self._user_ids(conn, limit=limit, after=after)

    def _user_ids(self, conn: sa.Connection, *, limit: int | None, after: str | None,
                  search: str | None = None) -> list[str]:
        """The tenant's user ids in code-point order: those containing ``search`` (any case), after
        ``after``, at most ``limit``."""
        db = self._core.db
        found: set[str] = set()
        for table in (preferences, personas):
            column = db.bytewise(table.c.user_id)
            query = sa.select(column).where(table.c.tenant == self.tenant).distinct().order_by(column)
            if after is not None:
                query = query.where(column > after)
            if search:
                text = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(sa.func.lower(table.c.user_id).like(f"%{text}%", escape="\\"))
            if limit is not None:
                query = query.limit(limit)
            found |= set(conn.execute(query).scalars())
        ordered = sorted(found)
        return ordered if limit is None else ordered[:limit]

    def exists(self, user_id: str) -> bool:
        """Whether this tenant holds preferences or a persona for the user."""
        with self._core.db.read() as conn:
            return any(conn.execute(sa.select(t.c.id).where(t.c.tenant == self.tenant, t.c.user_id == user_id)
                                    .limit(1)).first() for t in (preferences, personas))

    # -- operator reads (the console; in process, not part of the declared API) -------------
    def user_summaries(self, *, search: str | None = None, after: str | None = None,
                       limit: int = 50) -> list[UserSummary]:
        """This tenant's users in id order, each summarised (:class:`UserSummary`): those whose id
        contains ``search`` (any case), after ``after``, at most ``limit``. One query per table."""
        tenant = self.tenant
        with self._core.db.read() as conn:
            ids = self._user_ids(conn, limit=limit, after=after, search=search)
            if not ids:
                return []
            seen: dict[str, int] = dict(conn.execute(sa.select(preferences.c.user_id, sa.func.count()).where(
                preferences.c.tenant == tenant, preferences.c.user_id.in_(ids)).group_by(preferences.c.user_id)).all())
            latest = {r.user_id: (r.version, r.at) for r in conn.execute(
                sa.select(personas.c.user_id, sa.func.max(personas.c.version).label("version"),
                          sa.func.max(personas.c.created_at).label("at"))
                .where(personas.c.tenant == tenant, personas.c.user_id.in_(ids)).group_by(personas.c.user_id))}
            judged = {r.user_id: (int(r.n), int(r.right or 0)) for r in conn.execute(
                sa.select(judgments.c.user_id, sa.func.count().label("n"),
                          sa.func.sum(sa.case((judgments.c.correct.is_(True), 1), else_=0)).label("right"))
                .where(judgments.c.tenant == tenant, judgments.c.user_id.in_(ids)).group_by(judgments.c.user_id))}
            failed: dict[str, int] = dict(conn.execute(sa.select(jobs.c.user_id, sa.func.count()).where(
                jobs.c.tenant == tenant, jobs.c.user_id.in_(ids), jobs.c.status == "failed")
                .group_by(jobs.c.user_id)).all())
        out = []
        for user_id in ids:
            version, at = latest.get(user_id, (None, None))
            n, right = judged.get(user_id, (0, 0))
            out.append(UserSummary(user_id=user_id, pairs_seen=int(seen.get(user_id, 0)),
                                   version=None if version is None else int(version), updated=_iso(at),
                                   prequential_judged=n, prequential_correct=right,
                                   prequential_accuracy=right / n if n else None,
                                   interval=wilson_interval(right, n), failed_jobs=int(failed.get(user_id, 0))))
        return out

    def evidence(self, user_id: str) -> list[PreferenceEvidence]:
        """The user's preferences in arrival order, each with its prequential judgment and the
        version that learned from it: why each persona version believes what it does."""
        tenant = self.tenant
        on = sa.and_(judgments.c.tenant == preferences.c.tenant, judgments.c.user_id == preferences.c.user_id,
                     judgments.c.pref_id == preferences.c.pref_id)
        with self._core.db.read() as conn:
            rows = conn.execute(
                sa.select(preferences.c.pref_id, preferences.c.record, preferences.c.arrived_version,
                          preferences.c.learned_version, judgments.c.id.label("judged"), judgments.c.correct,
                          judgments.c.row, judgments.c.created_at)
                .outerjoin(judgments, on)
                .where(preferences.c.tenant == tenant, preferences.c.user_id == user_id)
                .order_by(preferences.c.id)).all()
        return [PreferenceEvidence(pref_id=r.pref_id, record=PreferenceRecord.from_dict(r.record),
                                   arrived_version=int(r.arrived_version), learned_version=r.learned_version,
                                   judged=r.judged is not None, correct=r.correct,
                                   judgment=None if r.row is None else dict(r.row), judged_at=_iso(r.created_at))
                for r in rows]

    # -- personas ---------------------------------------------------------------------------
    def persona(self, user_id: str) -> PersonaState:
        """The user's current persona, version, pairs seen, prequential accuracy and confidence.
        Raises :class:`UnknownUserError` for a user the store holds nothing on."""
        tenant = self.tenant
        with self._core.db.read() as conn:
            latest = load_version(conn, tenant, user_id)
            seen, learned = conn.execute(sa.select(sa.func.count(), sa.func.count(preferences.c.learned_version))
                                         .where(preferences.c.tenant == tenant,
                                                preferences.c.user_id == user_id)).one()
            judged = conn.execute(sa.select(judgments.c.correct).where(
                judgments.c.tenant == tenant, judgments.c.user_id == user_id)).scalars().all()
            pending = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.tenant == tenant, jobs.c.user_id == user_id, jobs.c.status.in_(("pending", "running")))
                .order_by(jobs.c.created_at.desc()).limit(1)).scalar()
        if latest is None and not seen:
            raise UnknownUserError(user_id, tenant)
        right = sum(bool(c) for c in judged)
        interval = wilson_interval(right, len(judged))
        return PersonaState(
            user_id=user_id, persona="" if latest is None else latest.persona,
            version=None if latest is None else int(latest.version), pairs_seen=int(seen), pairs_learned=int(learned),
            prequential_accuracy=right / len(judged) if judged else None, prequential_judged=len(judged),
            confidence=None if interval is None else interval[0],
            personalization=self._personalization(latest, int(seen)),
            method=None if latest is None else latest.method,
            val_accuracy=None if latest is None else latest.val_accuracy,
            updated=None if latest is None else _iso(latest.created_at), pending_job=pending)

    def _personalization(self, latest: sa.Row[Any] | None, seen: int) -> str:
        if latest is not None:
            return "persona" if latest.persona or latest.judge.get("demos") else "none"
        memory = isinstance(self._core.backend, LLMJudgeBackend) and self._core.backend.memory
        return "memory" if memory and seen else "none"

    def history(self, user_id: str) -> list[PersonaVersion]:
        """Every persona version of the user, oldest first, with its prequential accuracy."""
        tenant = self.tenant
        with self._core.db.read() as conn:
            rows = conn.execute(sa.select(personas).where(personas.c.tenant == tenant, personas.c.user_id == user_id)
                                .order_by(personas.c.version)).all()
            judged = conn.execute(sa.select(judgments.c.version, judgments.c.correct).where(
                judgments.c.tenant == tenant, judgments.c.user_id == user_id)).all()
        if not rows and not self.exists(user_id):
            raise UnknownUserError(user_id, tenant)
        out = []
        for row in rows:
            mine = [bool(j.correct) for j in judged if j.version == row.version]
            out.append(PersonaVersion(
                version=int(row.version), persona=row.persona, method=row.method, reason=row.reason,
                preference_ids=list(row.preference_ids), demos=len(row.judge.get("demos") or []),
                val_accuracy=row.val_accuracy, cost=dict(row.cost), created=_iso(row.created_at) or "",
                prequential_judged=len(mine), prequential_accuracy=sum(mine) / len(mine) if mine else None))
        return out

    def fitted_judge(self, user_id: str, version: int | None = None) -> PersonalizedJudge | None:
        """The user's judge as a :class:`PersonalizedJudge` (None before the first persona)."""
        with self._core.db.read() as conn:
            row = load_version(conn, self.tenant, user_id, version)
            return None if row is None else self._core.judge_of(conn, row)

    def export(self, user_id: str, path: str | os.PathLike[str] | None = None, *,
               version: int | None = None) -> PersonalizedJudge:
        """The user's judge (newest version unless ``version``), the same JSON artifact that
        ``personae fit`` writes; saved to ``path`` when given (a folder gets ``<user>.json``)."""
        judge = self.fitted_judge(user_id, version)
        if judge is None:
            if not self.exists(user_id):
                raise UnknownUserError(user_id, self.tenant)
            if version is not None:
                raise NoPersonaError(f"user {user_id!r} has no persona version {version}", user_id=user_id)
            raise NoPersonaError(f"user {user_id!r} has no persona yet (fewer than {self.policy.min_pairs} pairs, "
                                 "or its first update has not run)", user_id=user_id)
        if path is not None:
            target = Path(path)
            judge.save(judge_path(target, user_id) if target.is_dir() or not target.suffix else target)
        with self._core.db.write() as conn:   # audited once the judge is out (see acting_as)
            _audit.write(conn, self.tenant, user_id, "export")
        return judge

    def import_judges(self, source: str | os.PathLike[str] | Iterable[PersonalizedJudge], *,
                      preferences: Mapping[str, Iterable[PreferenceRecord | Mapping[str, Any]]] | None = None,
                      ) -> list[str]:
        """Store fitted judges (a folder of ``personae fit`` output, or judges) as each user's
        newest persona version (method ``imported``); returns the user ids. ``preferences`` gives,
        by user, the pairs a judge was fitted on: they are stored as learned by the imported
        version (so they are its evidence, and no prequential judgment is made of them)."""
        if isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if not folder.is_dir():
                raise DataError("expected a folder of fitted judges", source=str(folder))
            judges = [PersonalizedJudge.load(p) for p in sorted(folder.glob("*.json")) if p.name != "run.json"]
        else:
            judges = list(source)
        fitted_on = {user: [_as_record(item, user, f"import_judges(preferences[{user!r}])", index)
                            for index, item in enumerate(items, 1)] for user, items in (preferences or {}).items()}
        strays = sorted(set(fitted_on) - {judge.user_id for judge in judges})
        if strays:
            raise ConfigError(f"import_judges: preferences given for users without a judge: {strays[:5]}")
        imported = []
        now = time.time()
        with self._core.db.write() as conn:
            for judge in judges:
                user_id = _check_id("user_id", judge.user_id)
                current = conn.execute(sa.select(sa.func.max(personas.c.version)).where(
                    personas.c.tenant == self.tenant, personas.c.user_id == user_id)).scalar() or 0
                added, already = self._insert(conn, user_id, fitted_on.get(user_id, []), now, arrived=current,
                                              learned=current + 1)
                conn.execute(personas.insert().values(
                    tenant=self.tenant, user_id=user_id, version=current + 1, persona=judge.persona,
                    judge=judge.to_dict(), preference_ids=[*added, *already], method="imported",
                    reason=f"fitted by {judge.preset or 'personae fit'} on {judge.n_train} train pairs",
                    val_accuracy=judge.val_accuracy, cost=dict(judge.cost), created_at=now))
                imported.append(user_id)
        return imported

    def forget(self, user_id: str) -> dict[str, int]:
        """Remove everything the store holds on the user: preferences, personas, judgments, jobs.
        Returns how many rows of each went; raises :class:`UnknownUserError` when there was none.

        On SQLite the user's text is gone from the database's files when this returns (deleted
        rows are overwritten, and the WAL is copied in and truncated). On PostgreSQL the rows'
        space is freed when autovacuum next visits the tables and overwritten when it is reused;
        :meth:`erase` rewrites the tables at once. The audit log keeps that it happened (who,
        when; no text of the user's), written in the same transaction as the delete."""
        removed = {}
        db = self._core.db
        with db.write() as conn:
            for table in (preferences, personas, judgments, jobs):
                result = conn.execute(table.delete().where(table.c.tenant == self.tenant,
                                                           table.c.user_id == user_id))
                removed[table.name] = int(result.rowcount)
            if any(removed.values()):
                _audit.write(conn, self.tenant, user_id, "forget")
        with self._core.lock:   # no judge of the user stays decoded in memory
            self._core.fitted.clear()
            self._core.forgotten += 1
        if db.sqlite:   # also when nothing went: a retry after a busy erasure (503) finishes it
            try:
                db.erase()
            except sa.exc.OperationalError:
                logger.error("forgot %s/%s, but readers kept the WAL busy: its text stays in the WAL until the "
                             "next checkpoint; forget again to erase it now", self.tenant, user_id)
                raise
        if not any(removed.values()):
            raise UnknownUserError(user_id, self.tenant)
        return removed

    def erase(self) -> None:
        """Leave no byte of deleted rows (a forgotten user's) in the database's files. On SQLite
        :meth:`forget` does it already (the WAL copied into the database and truncated); on
        PostgreSQL it rewrites the tables (``VACUUM FULL``, which locks each table while it runs:
        an operator's call, ``personae store forget --erase-now``). PostgreSQL's WAL segments and
        any backups keep old rows until they are recycled or expire."""
        self._core.db.erase()

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        """This tenant's audit log, newest first (at most ``limit`` rows): every export and forget,
        who did it (``token <id>``, ``console token <id>``, ``cli``, ``python``...), when, and the
        service's request id. An operator read, not part of the declared API."""
        if not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be a positive integer, got {limit!r}")
        with self._core.db.read() as conn:
            return _audit.read(conn, self.tenant, limit)

    # -- judging ------------------------------------------------------------------------------
    def _judging(self, user_id: str) -> tuple[JudgeBackend, PersonalizedJudge | None, int | None,
                                                list[PreferenceRecord]]:
        backend = self._core.backend
        if backend is None:
            raise ConfigError("this store has no judge: pass lm= or backend= to PersonaStore")
        _check_id("user_id", user_id)
        with self._core.db.read() as conn:
            row = conn.execute(sa.select(personas.c.id, personas.c.version, personas.c.created_at,
                                         personas.c.user_id).where(
                personas.c.tenant == self.tenant, personas.c.user_id == user_id)
                .order_by(personas.c.version.desc()).limit(1)).first()
            if row is None and conn.execute(sa.select(preferences.c.id).where(
                    preferences.c.tenant == self.tenant, preferences.c.user_id == user_id).limit(1)).first() is None:
                raise UnknownUserError(user_id, self.tenant)
            fitted = None if row is None else self._core.judge_of(conn, row)
            history: list[PreferenceRecord] = []
            if row is None and isinstance(backend, LLMJudgeBackend) and backend.memory:
                recent = conn.execute(sa.select(preferences.c.record).where(
                    preferences.c.tenant == self.tenant, preferences.c.user_id == user_id)
                    .order_by(preferences.c.id.desc()).limit(MEMORY_PAIRS)).scalars().all()
                history = [PreferenceRecord.from_dict(r) for r in reversed(recent)]
        return backend, fitted, None if row is None else int(row.version), history

    def judge(self, user_id: str, prompt: str, response_a: str, response_b: str, *,
              abstain_below: float | None = None) -> Verdict:
        """Which of ``response_a`` and ``response_b`` the user prefers, judged in both orders by the
        user's current persona version (cold start: the user's preferences, or nothing;
        ``personalization`` says which). Returns a :class:`~personae.programs.Verdict` with
        ``preferred`` (A or B), ``reasoning``, ``probability``, ``version``, ``personalization`` and
        ``abstained``: with ``abstain_below``, a verdict whose probability for the preferred side is
        under it comes back with ``abstained=True``. A user the store holds nothing on raises
        :class:`UnknownUserError`."""
        backend, fitted, version, history = self._judging(user_id)
        verdict = backend.compare(fitted, history, prompt, response_a, response_b)
        confidence = None if verdict.probability is None else max(verdict.probability, 1.0 - verdict.probability)
        abstained = abstain_below is not None and confidence is not None and confidence < abstain_below
        return _stored(verdict, version, abstained)

    def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> Ranking:
        """The best of several drafts for the user. The reward model scores each (no LM call);
        the LLM judge runs a knockout: ``len(candidates) - 1`` comparisons, each in both orders,
        so at most ``2 * (n - 1)`` LM calls (attempts aside)."""
        candidates = list(candidates)
        if not candidates or len(candidates) > MAX_RANK_CANDIDATES:
            raise ConfigError(f"rank takes 1 to {MAX_RANK_CANDIDATES} candidates, got {len(candidates)}")
        backend, fitted, version, history = self._judging(user_id)
        scores = backend.scores(fitted, prompt, candidates)
        if scores is not None:
            order = sorted(range(len(candidates)), key=lambda i: -scores[i])
            personalization = "persona" if fitted is not None and fitted.persona else "none"
            return Ranking(order[0], order, list(scores), 0, personalization, version)
        wins = [0.0] * len(candidates)
        out_in_round = [0] * len(candidates)
        verdicts: list[Verdict] = []
        alive = list(range(len(candidates)))
        round_no = 0
        while len(alive) > 1:
            round_no += 1
            survivors = []
            for k in range(0, len(alive) - 1, 2):
                i, j = alive[k], alive[k + 1]
                verdict = _stored(backend.compare(fitted, history, prompt, candidates[i], candidates[j]), version)
                verdicts.append(verdict)
                winner, loser = (i, j) if verdict.preferred == "A" else (j, i)
                wins[winner] += 1
                out_in_round[loser] = round_no
                survivors.append(winner)
            if len(alive) % 2:
                survivors.append(alive[-1])
            alive = survivors
        out_in_round[alive[0]] = round_no + 1
        order = sorted(range(len(candidates)), key=lambda i: (-out_in_round[i], -wins[i], i))
        personalization = verdicts[0].personalization if verdicts else "none"
        return Ranking(alive[0], order, wins, len(verdicts), personalization, version, verdicts)

    def generation_messages(self, user_id: str) -> list[dict[str, str]]:
        """A system prompt (as a one-message list) to write responses this user prefers (the
        plain prompt before the first persona)."""
        return self.persona(user_id).generation_messages()

    # -- jobs ---------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job | None:
        """The update job with this id (None if this tenant has no such job)."""
        found = self._core.queue.get(job_id)
        return found if found is not None and found.tenant == self.tenant else None

    def jobs(self, *, status: str | None = None, limit: int = 100, user_id: str | None = None) -> list[Job]:
        """This tenant's update jobs, newest first: those of ``status`` (``pending``, ``running``,
        ``done``, ``failed``) and of ``user_id`` when given; a failed job says why (``kind``, ``error``)."""
        if status is not None and status not in ("pending", "running", "done", "failed"):
            raise ConfigError(f"status must be pending, running, done or failed, not {status!r}")
        return self._core.queue.list(self.tenant, status=status, limit=limit, user_id=user_id)

    def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.05) -> Job | None:
        """Wait until the job is done or failed (None if this tenant has no such job); the job as
        it stands when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.job(job_id)
            if found is None or found.status in ("done", "failed") or time.monotonic() >= deadline:
                return found
            time.sleep(poll_s)

    def process_jobs(self, *, include_waiting: bool = False, limit: int | None = None) -> int:
        """Run due update jobs (of every tenant) in this thread; with ``include_waiting`` also
        those still in their debounce delay. Returns how many ran. A bug in an update raises."""
        if self._core.updater is None:
            raise ConfigError("this store has no judge to update personas with: pass lm= or backend=")
        self._core.queue.recover()  # jobs whose worker died (a killed process) are taken up first
        ran = 0
        while limit is None or ran < limit:
            job = self._core.queue.claim(due_before=math.inf if include_waiting else None)
            if job is None:
                break
            self._core.run_job(job, raise_bugs=True)
            ran += 1
        return ran

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until this tenant has no pending or running job; False when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        while True:
            with self._core.db.read() as conn:
                busy = conn.execute(sa.select(sa.func.count()).where(
                    jobs.c.tenant == self.tenant, jobs.c.status.in_(("pending", "running")))).scalar()
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


class AsyncPersonaStore:
    """:class:`PersonaStore` for asynchronous applications: the same methods, awaited. Each call
    runs in a worker thread, so the event loop keeps serving while the database or LM works."""

    def __init__(self, target: str | os.PathLike[str] | PersonaStore = "personae.db", **options: Any) -> None:
        self.sync = target if isinstance(target, PersonaStore) else PersonaStore(target, **options)

    def for_tenant(self, tenant: str) -> AsyncPersonaStore:
        """The same store seen by another tenant (an async view of :meth:`PersonaStore.for_tenant`)."""
        return AsyncPersonaStore(self.sync.for_tenant(tenant))

    async def add_preferences(self, user_id: str,
                              records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> AddResult:
        """Runs :meth:`personae.store.PersonaStore.add_preferences` in a worker thread: store the user's
        new preferences; returns the :class:`AddResult`."""
        return await asyncio.to_thread(self.sync.add_preferences, user_id, list(records))

    async def preferences(self, user_id: str) -> list[PreferenceRecord]:
        """Runs :meth:`personae.store.PersonaStore.preferences` in a worker thread: the user's stored
        preferences, in the order they arrived."""
        return await asyncio.to_thread(self.sync.preferences, user_id)

    async def fitted_judge(self, user_id: str, version: int | None = None) -> PersonalizedJudge | None:
        """Runs :meth:`personae.store.PersonaStore.fitted_judge` in a worker thread: the user's judge
        (None before the first persona)."""
        return await asyncio.to_thread(self.sync.fitted_judge, user_id, version)

    async def persona(self, user_id: str) -> PersonaState:
        """Runs :meth:`personae.store.PersonaStore.persona` in a worker thread: the user's current
        :class:`PersonaState`."""
        return await asyncio.to_thread(self.sync.persona, user_id)

    async def history(self, user_id: str) -> list[PersonaVersion]:
        """Runs :meth:`personae.store.PersonaStore.history` in a worker thread: every persona version of
        the user, oldest first."""
        return await asyncio.to_thread(self.sync.history, user_id)

    async def judge(self, user_id: str, prompt: str, response_a: str, response_b: str, *,
                    abstain_below: float | None = None) -> Verdict:
        """Runs :meth:`personae.store.PersonaStore.judge` in a worker thread: which of ``response_a``
        and ``response_b`` the user prefers, as a :class:`~personae.programs.Verdict`."""
        return await asyncio.to_thread(self.sync.judge, user_id, prompt, response_a, response_b,
                                       abstain_below=abstain_below)

    async def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> Ranking:
        """Runs :meth:`personae.store.PersonaStore.rank` in a worker thread: the best of ``candidates``
        for the user, as a :class:`Ranking`."""
        return await asyncio.to_thread(self.sync.rank, user_id, prompt, list(candidates))

    async def generation_messages(self, user_id: str) -> list[dict[str, str]]:
        """Runs :meth:`personae.store.PersonaStore.generation_messages` in a worker thread: a
        one-message system prompt to write responses this user prefers."""
        return await asyncio.to_thread(self.sync.generation_messages, user_id)

    async def export(self, user_id: str, path: str | os.PathLike[str] | None = None, *,
                     version: int | None = None) -> PersonalizedJudge:
        """Runs :meth:`personae.store.PersonaStore.export` in a worker thread: the user's judge, saved
        to ``path`` when given."""
        return await asyncio.to_thread(self.sync.export, user_id, path, version=version)

    async def import_judges(self, source: str | os.PathLike[str] | Iterable[PersonalizedJudge], *,
                            preferences: Mapping[str, Iterable[PreferenceRecord | Mapping[str, Any]]] | None = None,
                            ) -> list[str]:
        """Runs :meth:`personae.store.PersonaStore.import_judges` in a worker thread: store fitted
        judges as each user's newest persona version; returns the user ids."""
        return await asyncio.to_thread(lambda: self.sync.import_judges(source, preferences=preferences))

    async def forget(self, user_id: str) -> dict[str, int]:
        """Runs :meth:`personae.store.PersonaStore.forget` in a worker thread: remove everything held on
        the user; returns how many rows of each table went."""
        return await asyncio.to_thread(self.sync.forget, user_id)

    async def erase(self) -> None:
        """Runs :meth:`personae.store.PersonaStore.erase` in a worker thread."""
        await asyncio.to_thread(self.sync.erase)

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        """Runs :meth:`personae.store.PersonaStore.audit` in a worker thread: this tenant's audit log,
        newest first."""
        return await asyncio.to_thread(self.sync.audit, limit)

    async def users(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """Runs :meth:`personae.store.PersonaStore.users` in a worker thread: the tenant's users in id
        order, at most ``limit``, those after ``after``."""
        return await asyncio.to_thread(self.sync.users, limit=limit, after=after)

    async def user_summaries(self, *, search: str | None = None, after: str | None = None,
                             limit: int = 50) -> list[UserSummary]:
        """Runs :meth:`personae.store.PersonaStore.user_summaries` in a worker thread."""
        return await asyncio.to_thread(lambda: self.sync.user_summaries(search=search, after=after, limit=limit))

    async def evidence(self, user_id: str) -> list[PreferenceEvidence]:
        """Runs :meth:`personae.store.PersonaStore.evidence` in a worker thread."""
        return await asyncio.to_thread(self.sync.evidence, user_id)

    async def job(self, job_id: str) -> Job | None:
        """Runs :meth:`personae.store.PersonaStore.job` in a worker thread: the update job with this id
        (None if this tenant has no such job)."""
        return await asyncio.to_thread(self.sync.job, job_id)

    async def jobs(self, *, status: str | None = None, limit: int = 100, user_id: str | None = None) -> list[Job]:
        """Runs :meth:`personae.store.PersonaStore.jobs` in a worker thread: this tenant's update jobs,
        newest first."""
        return await asyncio.to_thread(lambda: self.sync.jobs(status=status, limit=limit, user_id=user_id))

    async def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.05) -> Job | None:
        """Runs :meth:`personae.store.PersonaStore.wait_job` in a worker thread: the job once done or
        failed, or as it stands when ``timeout`` runs out (None if there is no such job)."""
        return await asyncio.to_thread(self.sync.wait_job, job_id, timeout, poll_s)

    async def exists(self, user_id: str) -> bool:
        """Runs :meth:`personae.store.PersonaStore.exists` in a worker thread: whether this tenant holds
        anything on the user."""
        return await asyncio.to_thread(self.sync.exists, user_id)

    async def process_jobs(self, *, include_waiting: bool = False, limit: int | None = None) -> int:
        """Runs :meth:`personae.store.PersonaStore.process_jobs` in a worker thread: run due update
        jobs (at most ``limit``); returns how many ran."""
        return await asyncio.to_thread(self.sync.process_jobs, include_waiting=include_waiting, limit=limit)

    async def wait_idle(self, timeout: float = 60.0) -> bool:
        """Runs :meth:`personae.store.PersonaStore.wait_idle` in a worker thread: True once this tenant
        has no pending or running job, False when ``timeout`` ran out."""
        return await asyncio.to_thread(self.sync.wait_idle, timeout)

    async def ping(self) -> str:
        """Runs :meth:`personae.store.PersonaStore.ping` in a worker thread: the schema revision, once
        the database answers with a current schema."""
        return await asyncio.to_thread(self.sync.ping)

    async def job_counts(self) -> dict[str, int]:
        """Runs :meth:`personae.store.PersonaStore.job_counts` in a worker thread: update jobs of every
        tenant by status."""
        return await asyncio.to_thread(self.sync.job_counts)

    async def close(self) -> None:
        """Runs :meth:`personae.store.PersonaStore.close` in a worker thread: stop the update workers
        and close the database connections."""
        await asyncio.to_thread(self.sync.close)
