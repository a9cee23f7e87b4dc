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
    newest = sorted(p.name.split("_")[0] for p in (Path(__file__).parents[1] / "daemon" / "storage" / "migrations" / "versions").glob("0*.py"))[-1]
    assert versions == [newest]  # at the newest revision, recorded once
