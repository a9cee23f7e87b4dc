"""The Alembic migrations build, from an empty database, exactly the schema the code uses."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from daemon.storage.db import open_index
from daemon.storage.schema import metadata


def test_migrations_match_the_model(tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    open_index(url).dispose()
    engine = open_index(url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("select version_num from alembic_version").scalars().all()
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from daemon.storage.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert versions == heads and len(heads) == 1  # at the newest revision (one head), recorded once
