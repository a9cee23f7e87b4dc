"""The screening registry on SQLite: a generated cohort -> audit figures, exports, the HTML in headless Chromium."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from daemon.registry.audit_html import render_audit
from daemon.registry.measures import AuditOptions, compute_audit
from daemon.storage.db import open_index
from daemon.storage.registry import audit_records
from daemon.storage.schema import exams as exams_table
from tests.registry_checks import AS_OF, END, KEY, START, TOL, check_audit, check_exports, opted_out_identifiers
from tests.support.cohort import Cohort, CohortSpec, build_cohort

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("NODULED_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Cohort]]:
    engine = open_index(f"sqlite:///{tmp_path_factory.mktemp('registry') / 'index.sqlite'}")
    cohort = build_cohort(engine, CohortSpec())
    yield engine, cohort
    engine.dispose()


def test_every_audit_figure_matches_the_cohort_definition(registry: tuple[Engine, Cohort]) -> None:
    check_audit(*registry)


def test_exports_lcsr_csv_fhir_and_opted_out_participants_appear_nowhere(registry: tuple[Engine, Cohort]) -> None:
    check_exports(*registry)


def test_the_cohort_categories_come_from_the_protocol_engine(registry: tuple[Engine, Cohort]) -> None:
    engine, cohort = registry
    with engine.connect() as conn:
        stored = dict(conn.execute(select(exams_table.c.study_uid, exams_table.c.category)).all())
    assert stored == {e.study_uid: e.category for e in cohort.exams}
    assert {"1", "2", "4", "5"} <= set(stored.values())


def test_no_outcomes_recorded_is_said_not_zero(registry: tuple[Engine, Cohort]) -> None:
    engine, _ = registry
    exams, _ = audit_records(engine, key=KEY, as_of=AS_OF)
    a = compute_audit(exams, [], AuditOptions(START, END, AS_OF, adherence_tolerance_days=TOL))
    assert a["outcomes"]["recorded"] == 0
    page = render_audit(a)
    assert "No outcomes recorded" in page and "PPV of a positive screen" not in page


def test_audit_html_opens_in_headless_chromium_without_errors(registry: tuple[Engine, Cohort], tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian chromium is not installed (tests/setup/install_test_deps.sh installs it)")
    from tests.support.cdp import open_page

    engine, cohort = registry
    a = check_audit(engine, cohort)
    page = render_audit(a, site="Synthetic Screening Clinic", generated_at=dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
    for ident in opted_out_identifiers(cohort):
        assert ident not in page
    assert "http://" not in page and "https://" not in page
    html_path = tmp_path / "audit.html"
    html_path.write_text(page, encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "registry-audit.png"
    result = open_page(
        html_path,
        shot,
        {
            "images": "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)",
            "headings": "Array.from(document.querySelectorAll('h2')).map(h => h.textContent)",
            "positive": "document.body.innerText.includes('Positive screens')",
        },
    )
    assert result["errors"] == []
    assert len(result["values"]["images"]) == 4 and all(
        result["values"]["images"]
    )  # categories, dose, turnaround, readers
    assert {"Category distribution", "Positive rate", "Radiation dose", "Turnaround", "AI quality"} <= set(
        result["values"]["headings"]
    )
    assert shot.stat().st_size > 20_000
    shutil.copy(html_path, ARTIFACTS / "registry-audit.html")
