"""One user's update: prequential judgments of the new preferences, then first fit, incremental
revision or full refit of the persona, written as a new persona version (see UpdatePolicy)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dspy
import sqlalchemy as sa

from personae.data import PreferenceRecord, split_user
from personae.errors import UpdateConflict
from personae.lm import Cost, CostMeter, default_adapter
from personae.optimizers import SynthesizeMe
from personae.programs import PersonalizedJudge, PersonaRevision, Trace, VerifiedReasoning, check_reached
from personae.runs import CALL_FAILURES, Judgment, RetryPolicy
from personae.signatures import PairwiseJudge, personalized_instructions
from personae.store._backends import JudgeBackend
from personae.store._db import Database
from personae.store._jobs import Job, JobQueue
from personae.store._policy import UpdatePolicy
from personae.store._schema import judgments, personas, preferences

__all__ = ["FULL_FITS", "StoredPreference", "Updater", "load_preferences", "load_version"]

logger = logging.getLogger(__name__)

FULL_FITS = ("first-fit", "refit")
REVISION_ATTEMPTS = 3


@dataclass(frozen=True)
class StoredPreference:
    row: int
    pref_id: str
    record: PreferenceRecord
    arrived_version: int
    learned_version: int | None


def load_preferences(conn: sa.Connection, tenant: str, user_id: str) -> list[StoredPreference]:
    rows = conn.execute(sa.select(preferences.c.id, preferences.c.pref_id, preferences.c.record,
                                  preferences.c.arrived_version, preferences.c.learned_version)
                        .where(preferences.c.tenant == tenant, preferences.c.user_id == user_id)
                        .order_by(preferences.c.id)).all()
    return [StoredPreference(r.id, r.pref_id, PreferenceRecord.from_dict(r.record), r.arrived_version,
                             r.learned_version) for r in rows]


def load_version(conn: sa.Connection, tenant: str, user_id: str, version: int | None = None) -> sa.Row[Any] | None:
    """A persona version's row (the newest when ``version`` is None)."""
    query = sa.select(personas).where(personas.c.tenant == tenant, personas.c.user_id == user_id)
    if version is not None:
        query = query.where(personas.c.version == version)
    return conn.execute(query.order_by(personas.c.version.desc()).limit(1)).first()


class Updater:
    """Runs updates for the store; holds settings only (no run state)."""

    def __init__(self, db: Database, backend: JudgeBackend, lm: dspy.BaseLM | None, policy: UpdatePolicy,
                 queue: JobQueue) -> None:
        self.db = db
        self.queue = queue
        self.backend = backend
        self.lm = lm
        self.policy = policy

    # -- prequential ------------------------------------------------------------------------
    def _check(self, conn: sa.Connection, job: Job | None, user_id: str) -> None:
        if job is not None and not self.queue.holds(conn, job):
            raise UpdateConflict(f"user {user_id}: job {job.id} is no longer this worker's (forgotten, or taken up)")

    def judge_new(self, tenant: str, user_id: str, prefs: Sequence[StoredPreference],
                  job: Job | None = None) -> dict[str, Any]:
        """Judge each preference not judged yet with the version current when it arrived."""
        with self.db.read() as conn:
            done = set(conn.execute(sa.select(judgments.c.pref_id).where(
                judgments.c.tenant == tenant, judgments.c.user_id == user_id)).scalars())
            # a preference learned before it was judged (it came with an imported judge) has no
            # prequential judgment: no version judged it before learning from it
            todo = [p for p in prefs if p.pref_id not in done and p.learned_version is None]
            fitted: dict[int, PersonalizedJudge | None] = {0: None}
            for version in {p.arrived_version for p in todo} - {0}:
                row = load_version(conn, tenant, user_id, version)
                fitted[version] = None if row is None else PersonalizedJudge.from_dict(row.judge)
        meter = CostMeter()
        right = 0
        with meter.track():
            position = {p.pref_id: i for i, p in enumerate(prefs)}
            for pref in todo:
                start = position[pref.pref_id]
                history = [p.record for p in prefs[max(0, start - 50):start]] if self.policy.memory_judge else []
                judged = self.backend.prequential(fitted.get(pref.arrived_version), history, pref.record,
                                                  record_id=pref.pref_id, seed=self.policy.seed)
                if judged.kind in CALL_FAILURES:  # no answer: judge it on the next run of the job
                    raise _call_failure(judged.error, judged.kind, f"prequential judgment of {pref.pref_id}")
                right += bool(judged.correct)
                with self.db.write() as conn:
                    self._check(conn, job, user_id)
                    conn.execute(self.db.insert(judgments).values(
                        tenant=tenant, user_id=user_id, pref_id=pref.pref_id, version=pref.arrived_version,
                        correct=judged.correct, row=judged.model_dump(mode="json", exclude={"prompt"}),
                        created_at=time.time()).on_conflict_do_nothing())
        return {"judged": len(todo), "correct": right, "cost": meter.cost.to_dict()}

    # -- persona ----------------------------------------------------------------------------
    def update(self, tenant: str, user_id: str, job: Job | None = None) -> dict[str, Any]:
        """Everything one job does for one user; returns what it did, for the job's record.
        With ``job``, every write first checks that the job still runs under this worker."""
        with self.db.read() as conn:
            prefs = load_preferences(conn, tenant, user_id)
            latest = load_version(conn, tenant, user_id)
        result: dict[str, Any] = {"pairs": len(prefs)}
        if self.policy.prequential:
            result["prequential"] = self.judge_new(tenant, user_id, prefs, job)
        new = [p for p in prefs if p.learned_version is None]
        if latest is None and len(prefs) < self.policy.min_pairs:
            return {**result, "action": "cold start",
                    "reason": f"{len(prefs)} of {self.policy.min_pairs} pairs before a first persona"}
        if not new:
            return {**result, "action": "none", "reason": "no new pairs"}
        if self.lm is None:
            return {**result, "action": "none", "reason": "no LM to write personas with"}
        with self.db.read() as conn:
            action, reason = self._decide(conn, tenant, user_id, prefs, new, latest)
        meter = CostMeter()
        with meter.track(), dspy.context(lm=self.lm, adapter=dspy.settings.adapter or default_adapter()):
            if action in FULL_FITS:
                fitted = SynthesizeMe(self.policy.preset, seed=self.policy.seed, fractions=self.policy.fractions) \
                    .fit([p.record for p in prefs], lm=self.lm, user_id=user_id, require_validation=False)
                used = [p.pref_id for p in prefs]
            else:
                assert latest is not None
                judged = self._judged_right(tenant, user_id, new) if self.backend.name == "llm" else {}
                fitted, note = self._revise(PersonalizedJudge.from_dict(latest.judge), new, user_id, judged)
                used = [*latest.preference_ids, *(p.pref_id for p in new)]
                reason = f"{reason}; {note}"
        cost = meter.cost
        try:
            version = self._write_version(tenant, user_id, latest, fitted, used, new, action, reason, cost, job)
        except sa.exc.IntegrityError as exc:  # another writer took this version number first
            raise UpdateConflict(f"user {user_id}: another update wrote a persona version meanwhile") from exc
        logger.info("user %s/%s: persona version %s by %s (%s), %s", tenant, user_id, version, action, reason,
                    cost.summary())
        return {**result, "action": action, "reason": reason, "version": version, "cost": cost.to_dict()}

    def _decide(self, conn: sa.Connection, tenant: str, user_id: str, prefs: Sequence[StoredPreference],
                new: Sequence[StoredPreference], latest: sa.Row[Any] | None) -> tuple[str, str]:
        p = self.policy
        if latest is None:
            return "first-fit", f"{len(prefs)} pairs reached min_pairs={p.min_pairs}"
        full = conn.execute(sa.select(personas.c.version, personas.c.val_accuracy, personas.c.preference_ids)
                            .where(personas.c.tenant == tenant, personas.c.user_id == user_id,
                                   personas.c.method.in_(FULL_FITS + ("imported",)))
                            .order_by(personas.c.version.desc()).limit(1)).first()
        if full is None:
            return "refit", "no full fit among the versions"
        if full.val_accuracy is None and split_user([s.record for s in prefs], p.fractions).val:
            return "refit", "the history now has a validation side"
        since = len(prefs) - len(full.preference_ids)
        if since >= p.refit_every:
            return "refit", f"{since} pairs since the last full fit (refit_every={p.refit_every})"
        judged = conn.execute(sa.select(judgments.c.correct).where(
            judgments.c.tenant == tenant, judgments.c.user_id == user_id,
            judgments.c.version >= full.version)).scalars().all()
        if full.val_accuracy is not None and len(judged) >= p.min_judged:
            accuracy = sum(bool(c) for c in judged) / len(judged)
            if accuracy < full.val_accuracy - p.refit_margin:
                return "refit", (f"prequential accuracy {accuracy:.2f} over {len(judged)} pairs fell below the "
                                 f"fitted validation accuracy {full.val_accuracy:.2f} by more than {p.refit_margin}")
        return "incremental", f"{len(new)} new pairs"

    def _judged_right(self, tenant: str, user_id: str, new: Sequence[StoredPreference]) -> dict[str, Trace]:
        """The new pairs whose prequential judgment predicted the user's choice, as verified traces:
        that reasoning was checked against the choice already, so it costs no second call."""
        by_id = {p.pref_id: p.record for p in new}
        with self.db.read() as conn:
            rows = conn.execute(sa.select(judgments.c.pref_id, judgments.c.row).where(
                judgments.c.tenant == tenant, judgments.c.user_id == user_id, judgments.c.correct.is_(True),
                judgments.c.pref_id.in_(list(by_id)))).all()
        traces = {}
        for pref_id, row in rows:
            judged = Judgment.model_validate(row)  # rows of earlier versions read in today's names
            if not judged.reasoning or judged.preferred is None:
                continue
            record = by_id[pref_id]
            a, b = (record.chosen, record.rejected) if judged.chosen_first else (record.rejected, record.chosen)
            traces[pref_id] = Trace(pref_id, record.prompt, a, b, judged.preferred, judged.reasoning)
        return traces

    def _revise(self, previous: PersonalizedJudge, new: Sequence[StoredPreference], user_id: str,
                judged: dict[str, Trace]) -> tuple[PersonalizedJudge, str]:
        verifier = VerifiedReasoning(attempts=self.policy.verify_attempts, seed=self.policy.seed)
        unexplained = [p for p in new if p.pref_id not in judged]
        verified = [verifier.for_record(p.record) for p in unexplained]
        check_reached(verified, f"user {user_id}: verified reasoning")
        found = {pred.trace.record_id: pred.trace for pred in verified if pred.verified}
        traces = [judged.get(p.pref_id) or found[p.pref_id] for p in new if p.pref_id in judged or p.pref_id in found]
        if not traces:
            return previous, f"no new pair verified ({len(new)} tried): persona unchanged"
        revision = PersonaRevision(attempts=1)  # retried below (REVISION_ATTEMPTS)
        outcome = RetryPolicy(max_attempts=REVISION_ATTEMPTS).attempt(
            lambda: revision(persona=previous.persona, traces=traces))
        if outcome.kind in CALL_FAILURES:
            raise outcome.exception(f"user {user_id}: persona revision")
        if outcome.value is None:
            return previous, f"revision unusable ({outcome.error}): persona unchanged"
        persona = str(outcome.value.persona)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return previous.replace(persona=persona, created=created, val_accuracy=None,
                                instructions=personalized_instructions(PairwiseJudge.instructions, persona)), \
            (f"{len(traces)} of {len(new)} new pairs verified ({len(judged)} by their prequential judgment, "
             f"{len(unexplained)} explained anew)")

    def _write_version(self, tenant: str, user_id: str, latest: sa.Row[Any] | None, fitted: PersonalizedJudge,
                       used: list[str], new: Sequence[StoredPreference], action: str, reason: str,
                       cost: Cost, job: Job | None) -> int:
        """Write the new version (or, when nothing changed, mark the new pairs learned by the
        current one) in one transaction."""
        with self.db.write() as conn:
            self._check(conn, job, user_id)
            current = load_version(conn, tenant, user_id)
            base = 0 if current is None else int(current.version)
            if base != (0 if latest is None else int(latest.version)):
                raise UpdateConflict(f"user {user_id}: another update wrote version {base} meanwhile")
            unchanged = latest is not None and action == "incremental" and fitted.persona == latest.persona
            version = base if unchanged else base + 1
            if not unchanged:
                fitted = fitted.replace(cost={**fitted.cost, **({"update": cost.to_dict()})})
                conn.execute(personas.insert().values(
                    tenant=tenant, user_id=user_id, version=version, persona=fitted.persona,
                    judge=fitted.to_dict(), preference_ids=used, method=action, reason=reason,
                    val_accuracy=fitted.val_accuracy, cost=cost.to_dict(), created_at=time.time()))
            learned = [p.pref_id for p in new] if action == "incremental" else used
            conn.execute(preferences.update().where(
                preferences.c.tenant == tenant, preferences.c.user_id == user_id,
                preferences.c.pref_id.in_(learned), preferences.c.learned_version.is_(None))
                .values(learned_version=version))
        return version


def _call_failure(error: str | None, kind: str | None, item: str) -> Exception:
    from personae.errors import LMCallError

    return LMCallError(error or "failed", kind=kind or "lm", item=item)
