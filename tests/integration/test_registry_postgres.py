"""The screening registry on PostgreSQL (the scale-out tests' real server): same cohort, same checks as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from daemon.storage.db import open_index
from daemon.storage.registry import upsert_participants
from tests.registry_checks import check_audit, check_exports
from tests.support.cohort import Cohort, CohortSpec, build_cohort, participant_rows
from tests.support.servers import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_registry() -> Iterator[tuple[Engine, Cohort]]:
    pg = PostgresServer().start()
    engine = open_index(pg.url)
    try:
        yield engine, build_cohort(engine, CohortSpec())
    finally:
        engine.dispose()
        pg.stop()


def test_audit_figures_on_postgresql(pg_registry: tuple[Engine, Cohort]) -> None:
    check_audit(*pg_registry)


def test_exports_on_postgresql(pg_registry: tuple[Engine, Cohort]) -> None:
    check_exports(*pg_registry)


def test_participant_upsert_is_idempotent_on_postgresql(pg_registry: tuple[Engine, Cohort]) -> None:
    engine, cohort = pg_registry
    again = upsert_participants(engine, participant_rows(cohort))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(cohort.participants))
