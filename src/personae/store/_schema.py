"""The persona store's tables (SQLAlchemy Core), the schema the migrations build.

Every row is namespaced by ``tenant`` and ``user_id``. Times are seconds since the epoch (UTC).

- ``preferences``: append-only; ``pref_id`` is the client's id for the pair, or a hash of its
  content, unique per user, so a retried add never stores a pair twice. ``arrived_version`` is
  the persona version current when it arrived (0: none yet), ``learned_version`` the version
  that learned from it (None: not yet).
- ``personas``: every persona version of a user: the fitted judge (a ``PersonalizedJudge`` as
  JSON), the preference ids it was fitted on, how it was made, its cost.
- ``judgments``: the prequential judgment of each preference, made by the version current
  when it arrived, before anything learned from it (one ``personae.runs.Judgment`` row each).
- ``jobs``: update jobs; at most one pending per user (a burst of adds moves its due time).
- ``api_tokens``: the bearer tokens of the HTTP service, each bound to one tenant, stored as
  the SHA-256 of the token (a token is 256 random bits, so a fast hash is enough), with the
  scopes it holds (``read,write,admin``; ``ops``) and when it expires (None: never).
- ``audit``: one row per export or forget of a user: who did it (``token <id>``, ``cli``,
  ``python``, ...), when, and the request id when there was one. Never any user text, so a
  forget leaves its own row behind.
"""

from __future__ import annotations

import sqlalchemy as sa

from personae.errors import ConfigError

__all__ = ["MAX_ID_CHARS", "METADATA", "api_tokens", "audit", "check_id", "jobs", "judgments", "personas",
           "preferences"]

METADATA = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
MAX_ID_CHARS = {"tenant": 128, "user_id": 256, "pref_id": 256}   # the columns' widths below
_TENANT = sa.String(MAX_ID_CHARS["tenant"])
_USER = sa.String(MAX_ID_CHARS["user_id"])


def check_id(kind: str, value: object) -> str:
    """``value`` when it can be a ``kind`` id (a tenant, a user id), else :class:`ConfigError`."""
    limit = MAX_ID_CHARS[kind]
    if not isinstance(value, str) or not value.strip() or len(value) > limit or any(ord(c) < 32 for c in value):
        raise ConfigError(f"{kind} must be a non-empty string of at most {limit} characters without control "
                          f"characters, got {value!r:.80}")
    return value


preferences = sa.Table(
    "preferences", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("tenant", _TENANT, nullable=False),
    sa.Column("user_id", _USER, nullable=False),
    sa.Column("pref_id", sa.String(256), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("arrived_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("learned_version", sa.Integer, nullable=True),
    sa.UniqueConstraint("tenant", "user_id", "pref_id", name="uq_preferences_pref"),
    sa.Index("ix_preferences_user", "tenant", "user_id", "id"),
)

personas = sa.Table(
    "personas", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("tenant", _TENANT, nullable=False),
    sa.Column("user_id", _USER, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("persona", sa.Text, nullable=False),
    sa.Column("judge", sa.JSON, nullable=False),
    sa.Column("preference_ids", sa.JSON, nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("val_accuracy", sa.Float, nullable=True),
    sa.Column("cost", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant", "user_id", "version", name="uq_personas_version"),
)

judgments = sa.Table(
    "judgments", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("tenant", _TENANT, nullable=False),
    sa.Column("user_id", _USER, nullable=False),
    sa.Column("pref_id", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("correct", sa.Boolean, nullable=True),
    sa.Column("row", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant", "user_id", "pref_id", name="uq_judgments_pref"),
)

jobs = sa.Table(
    "jobs", METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", _TENANT, nullable=False),
    sa.Column("user_id", _USER, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),   # pending | running | done | failed
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Index("ix_jobs_due", "status", "due_at"),
    sa.Index("ix_jobs_user", "tenant", "user_id", "status"),
    # one pending job per user: a burst of preferences moves its due time instead of adding jobs
    sa.Index("uq_jobs_pending", "tenant", "user_id", unique=True,
             sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'")),
)

api_tokens = sa.Table(
    "api_tokens", METADATA,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("tenant", _TENANT, nullable=False),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("scopes", sa.String(64), nullable=False, server_default="read,write,admin"),
    sa.Column("expires_at", sa.Float, nullable=True),
)

audit = sa.Table(
    "audit", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("tenant", _TENANT, nullable=False),
    sa.Column("user_id", _USER, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),     # export | forget
    sa.Column("actor", sa.String(128), nullable=False),     # token <id> | console token <id> | cli | python ...
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Index("ix_audit_tenant", "tenant", "id"),
)
