"""The first schema: preferences, persona versions, prequential judgments, update jobs.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("pref_id", sa.String(256), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("arrived_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("learned_version", sa.Integer, nullable=True),
        sa.UniqueConstraint("tenant", "user_id", "pref_id", name="uq_preferences_pref"),
    )
    op.create_index("ix_preferences_user", "preferences", ["tenant", "user_id", "id"])
    op.create_table(
        "personas",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
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
    op.create_table(
        "judgments",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("pref_id", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("correct", sa.Boolean, nullable=True),
        sa.Column("row", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant", "user_id", "pref_id", name="uq_judgments_pref"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
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
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "due_at"])
    op.create_index("ix_jobs_user", "jobs", ["tenant", "user_id", "status"])
    op.create_index("uq_jobs_pending", "jobs", ["tenant", "user_id"], unique=True,
                    sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("judgments")
    op.drop_table("personas")
    op.drop_table("preferences")
