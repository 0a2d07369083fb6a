"""Scopes and expiry on the service's tokens, and the audit log of exports and forgets.

Tokens made before this revision get every scope they could use then (``read,write,admin``),
so none loses access; none of them expires.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # the server default fills the rows already there: old tokens keep all they could do
    op.add_column("api_tokens", sa.Column("scopes", sa.String(64), nullable=False, server_default="read,write,admin"))
    op.add_column("api_tokens", sa.Column("expires_at", sa.Float, nullable=True))
    op.create_table(
        "audit",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_tenant", "audit", ["tenant", "id"])


def downgrade() -> None:
    op.drop_table("audit")
    with op.batch_alter_table("api_tokens") as table:   # batch: an older SQLite drops a column by copying
        table.drop_column("expires_at")
        table.drop_column("scopes")
