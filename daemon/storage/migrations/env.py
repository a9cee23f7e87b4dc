"""Alembic environment: migrations run on the connection handed over by daemon.storage.db.migrate."""

from __future__ import annotations

from alembic import context

from daemon.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - alembic CLI use
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit(
            "set sqlalchemy.url in the Alembic configuration (or run migrations through daemon.storage.db)"
        )
    connection = create_engine(url).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
