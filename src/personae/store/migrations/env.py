"""Alembic environment of the persona store: runs on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from personae.store._schema import METADATA

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("the persona store's migrations run through PersonaStore, which passes a connection")
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
