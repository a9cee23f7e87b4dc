"""The index database: engine creation and schema migrations.

SQLite (default, a file in the data directory) or PostgreSQL (scale-out),
the same SQLAlchemy Core code on both.  The schema is created and upgraded
only by Alembic migrations (``daemon/storage/migrations``), run by :func:`open_index`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets readers (status, stability) run beside the receiving threads;
    # synchronous=FULL makes every commit durable before C-STORE success is sent.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_index_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings noduled relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_index(url: str) -> Engine:
    """Create the engine and migrate the schema."""
    engine = create_index_engine(url)
    migrate(engine)
    return engine
