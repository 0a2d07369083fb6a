"""Update jobs: queued by adds (debounced, one pending per user), claimed under a lease by
worker threads of any process, renewed while they run, taken up again when a lease expires.

A job is a note that a user has preferences to learn from; whichever job runs reads all of
them, so a job that finds another pending one for its user when it must be retried gives way
to it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from personae.errors import ConfigError, DataError, LMCallError, PersonaeError, UpdateConflict
from personae.runs import failure_kind, redact
from personae.store._db import Database
from personae.store._policy import UpdatePolicy
from personae.store._schema import jobs

__all__ = ["Job", "JobQueue", "UpdateWorker"]

logger = logging.getLogger(__name__)

JOB_FIELDS = ("id", "tenant", "user_id", "status", "due_at", "created_at", "started_at", "finished_at", "attempts",
              "error", "kind", "result")


@dataclass(frozen=True)
class Job:
    """An update job as stored: ``status`` is ``pending``, ``running``, ``done`` or ``failed``."""

    id: str
    tenant: str
    user_id: str
    status: str
    due_at: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    error: str | None
    kind: str | None
    result: dict[str, Any] | None

    @classmethod
    def of(cls, row: Any) -> Job:
        """The job of a row of the jobs table (any row with the job's columns as attributes)."""
        return cls(**{name: getattr(row, name) for name in JOB_FIELDS})


class JobQueue:
    """The jobs table's operations."""

    def __init__(self, db: Database, policy: UpdatePolicy) -> None:
        self.db = db
        self.policy = policy
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def enqueue(self, conn: sa.Connection, tenant: str, user_id: str) -> str:
        """The user's pending job, created or moved to ``debounce_s`` from now (at most
        ``max_delay_s`` after it was created), inside the add's transaction, so a burst of adds
        yields one job. A job claimed meanwhile is running: the add then queues a new one."""
        now = time.time()
        mine = (jobs.c.tenant == tenant, jobs.c.user_id == user_id, jobs.c.status == "pending")
        for _ in range(10):
            due = self.db.least(now + self.policy.debounce_s, jobs.c.created_at + self.policy.max_delay_s)
            moved = conn.execute(jobs.update().where(*mine).values(due_at=self.db.greatest(due, jobs.c.due_at))
                                 .returning(jobs.c.id)).first()
            if moved is not None:
                return str(moved.id)
            created = conn.execute(self.db.insert(jobs).values(
                id=uuid.uuid4().hex, tenant=tenant, user_id=user_id, status="pending",
                due_at=now + min(self.policy.debounce_s, self.policy.max_delay_s), created_at=now, attempts=0)
                .on_conflict_do_nothing().returning(jobs.c.id)).first()
            if created is not None:
                return str(created.id)
        raise RuntimeError(f"could not queue an update job for {user_id!r}: the pending job kept changing")

    def claim(self, *, due_before: float | None = None) -> Job | None:
        """Take the next job due before ``due_before`` (default now) whose user has none
        running; None when there is none."""
        now = time.time()
        due_before = now if due_before is None else due_before
        running = _running_for(jobs)
        with self.db.write() as conn:
            candidates = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.status == "pending", jobs.c.due_at <= due_before, ~running)
                .order_by(jobs.c.due_at).limit(8)).scalars()
            for job_id in list(candidates):
                claimed = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "pending").values(
                    status="running", owner=self.owner, started_at=now, lease_until=now + self.policy.lease_s,
                    attempts=jobs.c.attempts + 1))
                if claimed.rowcount:
                    return Job.of(conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one())
        return None

    def next_due(self) -> float | None:
        """When the next claimable job falls due (None: there is none)."""
        with self.db.read() as conn:
            due = conn.execute(sa.select(sa.func.min(jobs.c.due_at)).where(
                jobs.c.status == "pending", ~_running_for(jobs))).scalar()
        return None if due is None else float(due)

    def renew(self, job_ids: list[str]) -> list[str]:
        """Extend the leases of this worker's running jobs; returns those it no longer holds."""
        if not job_ids:
            return []
        with self.db.write() as conn:
            kept = conn.execute(jobs.update().where(jobs.c.id.in_(job_ids), jobs.c.owner == self.owner,
                                                    jobs.c.status == "running")
                                .values(lease_until=time.time() + self.policy.lease_s).returning(jobs.c.id))
            held = set(kept.scalars())
        lost = [job_id for job_id in job_ids if job_id not in held]
        if lost:
            logger.warning("lost the lease of update job(s) %s: another worker took them up", ", ".join(lost))
        return lost

    def holds(self, conn: sa.Connection, job: Job) -> bool:
        """Whether ``job`` still runs under this worker's lease (inside the caller's transaction)."""
        return conn.execute(sa.select(jobs.c.id).where(jobs.c.id == job.id, jobs.c.owner == self.owner,
                                                       jobs.c.status == "running")).first() is not None

    def recover(self) -> int:
        try:
            return self._recover()
        except sa.exc.IntegrityError:  # a pending job of the same user appeared meanwhile: next time
            return 0

    def _recover(self) -> int:
        """Jobs whose worker stopped renewing their lease (a crash, a kill) become pending again,
        or give way to a pending job of the same user. Returns how many were taken up."""
        now = time.time()
        taken = 0
        with self.db.write() as conn:
            stale = conn.execute(sa.select(jobs.c.id, jobs.c.tenant, jobs.c.user_id, jobs.c.attempts).where(
                jobs.c.status == "running", jobs.c.lease_until < now)).all()
            for job in stale:
                pending = conn.execute(sa.select(jobs.c.id).where(
                    jobs.c.tenant == job.tenant, jobs.c.user_id == job.user_id, jobs.c.status == "pending")).first()
                if job.attempts >= self.policy.job_attempts:  # it keeps taking its worker down
                    conn.execute(jobs.update().where(jobs.c.id == job.id).values(
                        status="failed", kind="interrupted", finished_at=now, owner=None,
                        error=f"its worker stopped before it finished, {job.attempts} times"))
                elif pending is None:
                    conn.execute(jobs.update().where(jobs.c.id == job.id).values(
                        status="pending", owner=None, lease_until=None, due_at=now,
                        error="its worker stopped before it finished; taken up again"))
                else:
                    conn.execute(jobs.update().where(jobs.c.id == job.id).values(
                        status="failed", kind="interrupted", finished_at=now, owner=None,
                        error=f"its worker stopped before it finished; job {pending.id} does the update"))
                taken += 1
        if taken:
            logger.warning("took up %d update job(s) whose worker stopped", taken)
        return taken

    def finish(self, job: Job, result: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job.id, jobs.c.owner == self.owner).values(
                status="done", finished_at=time.time(), owner=None, lease_until=None, error=None, kind=None,
                result=result))

    def fail(self, job: Job, exc: BaseException) -> bool:
        """Record a failed run of ``job``; True when it was queued to be tried again. A job this
        worker no longer holds (its lease ran out, its user was forgotten) is left alone."""
        try:
            kind = _kind(exc)
        except Exception:  # classifying must never leave the job running
            kind = "bug"
        error = redact(f"{type(exc).__name__}: {exc}")[:2000]
        now = time.time()
        retry = kind in _RETRIED and job.attempts < self.policy.job_attempts
        held = (jobs.c.id == job.id, jobs.c.owner == self.owner, jobs.c.status == "running")
        if retry:
            try:
                with self.db.write() as conn:
                    requeued = conn.execute(jobs.update().where(*held).values(
                        status="pending", owner=None, lease_until=None, error=error, kind=kind,
                        due_at=now + min(60.0, 2.0 ** job.attempts)).returning(jobs.c.id)).first()
                return requeued is not None
            except sa.exc.IntegrityError:  # another pending job of this user does the update
                error += " (a newer pending job of this user does the update)"
        with self.db.write() as conn:
            conn.execute(jobs.update().where(*held).values(
                status="failed", owner=None, lease_until=None, finished_at=now, error=error, kind=kind))
        return False

    def get(self, job_id: str) -> Job | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else Job.of(row)

    def list(self, tenant: str, *, status: str | None = None, limit: int = 100,
             user_id: str | None = None) -> list[Job]:
        """A tenant's jobs, newest first (only those of ``status`` and ``user_id`` when given)."""
        query = sa.select(jobs).where(jobs.c.tenant == tenant)
        if user_id is not None:
            query = query.where(jobs.c.user_id == user_id)
        if status is not None:
            query = query.where(jobs.c.status == status)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(jobs.c.created_at.desc()).limit(limit)).all()
        return [Job.of(row) for row in rows]


_RETRIED = frozenset({"timeout", "rate_limit", "server", "transport", "lm", "conflict", "database"})


def _running_for(table: sa.Table) -> sa.Exists:
    """Whether the job row's user has a job running (correlated with ``table``)."""
    other = jobs.alias("other")
    return sa.select(other.c.id).where(other.c.tenant == table.c.tenant, other.c.user_id == table.c.user_id,
                                       other.c.status == "running").exists()


def _kind(exc: BaseException) -> str:

    if isinstance(exc, UpdateConflict):
        return "conflict"
    if isinstance(exc, sa.exc.OperationalError) or (isinstance(exc, sa.exc.DBAPIError)
                                                    and exc.connection_invalidated):
        return "database"  # the database was unreachable or busy for a moment
    if isinstance(exc, LMCallError):
        return exc.kind
    if isinstance(exc, DataError):
        return "data"
    if isinstance(exc, ConfigError):
        return "input" if type(exc).__name__ == "ItemError" else "config"
    if isinstance(exc, PersonaeError):
        return failure_kind(exc) or "error"
    return failure_kind(exc) or "bug"


class UpdateWorker:
    """``concurrency`` threads that claim due jobs and run them, and one that renews their leases
    and takes up jobs whose worker died. Started by the store; ``stop`` lets running jobs end."""

    def __init__(self, queue: JobQueue, run: Callable[[Job], None], policy: UpdatePolicy) -> None:
        self.queue = queue
        self.run = run
        self.policy = policy
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.queue.recover()
        self._threads = [threading.Thread(target=self._loop, name=f"personae-update-{i}", daemon=True)
                         for i in range(self.policy.concurrency)]
        self._threads.append(threading.Thread(target=self._keeper, name="personae-lease", daemon=True))
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.queue.claim()
            except Exception:  # the database is unreachable for a moment: try again later
                logger.exception("could not claim an update job")
                job = None
            if job is None:
                due = None
                try:
                    due = self.queue.next_due()
                except Exception:
                    logger.exception("could not read the job queue")
                idle = self.policy.poll_s * 4
                wait = idle if due is None else max(0.0, min(due - time.time(), idle))
                with self._wake:
                    self._wake.wait(timeout=max(wait, 0.01))
                continue
            with self._lock:
                self._running.add(job.id)
            try:
                self.run(job)
            except Exception:  # run() records failures itself; a bug there must not end the worker
                logger.exception("update job %s failed", job.id)
            finally:
                with self._lock:
                    self._running.discard(job.id)

    def _keeper(self) -> None:
        interval = max(0.05, self.policy.lease_s / 3)
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    running = list(self._running)
                self.queue.renew(running)
                self.queue.recover()
            except Exception:
                logger.exception("could not renew update job leases")

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
