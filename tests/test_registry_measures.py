"""daemon.registry.measures on hand-made records: the edges of each definition."""

from __future__ import annotations

import datetime as dt

import pytest

from daemon.registry.csvfiles import eligible_nlcsp
from daemon.registry.measures import AuditOptions, ExamRecord, OutcomeRecord, compute_audit

D = dt.date
OPTS = AuditOptions(D(2024, 1, 1), D(2024, 12, 31), D(2026, 6, 30), adherence_tolerance_days=60)


def exam(i: int, who: str, date: dt.date, category: str, due: dt.date | None = None, **kw: object) -> ExamRecord:
    return ExamRecord(exam_id=i, participant_key=who, exam_date=date, category=category, due_date=due, **kw)  # type: ignore[arg-type]


def test_adherence_counts_early_and_late_returns_and_not_yet_due() -> None:
    exams = [
        exam(1, "a", D(2024, 1, 10), "2", D(2025, 1, 10)),
        exam(2, "a", D(2024, 10, 1), "1", D(2026, 10, 1)),  # early, then not yet due
        exam(3, "b", D(2024, 2, 1), "2", D(2025, 2, 1)),
        exam(4, "b", D(2025, 4, 2), "1"),  # 60 days late: on time
        exam(5, "c", D(2024, 3, 1), "2", D(2025, 3, 1)),
        exam(6, "c", D(2025, 5, 1), "1"),  # 61 days late: late
        exam(7, "d", D(2024, 4, 1), "2", D(2025, 4, 1)),  # never returned: overdue
    ]
    a = compute_audit(exams, [], OPTS)["adherence"]
    assert (a["evaluable"], a["adherent"], a["early"], a["late"], a["overdue"]) == (4, 2, 1, 1, 1)
    assert (
        a["overdue_list"][0]["participant"] == "d"
        and a["overdue_list"][0]["days_overdue"] == (D(2026, 6, 30) - D(2025, 4, 1)).days
    )


def test_cancer_windows_and_attribution() -> None:
    exams = [
        exam(1, "a", D(2024, 1, 10), "5"),
        exam(2, "b", D(2024, 2, 1), "1"),
        exam(3, "c", D(2024, 3, 1), "1"),
        exam(4, "d", D(2024, 3, 1), "6"),
    ]
    outcomes = [
        OutcomeRecord("a", D(2024, 2, 1), "biopsy", "adenocarcinoma-in-situ"),  # screen-detected
        OutcomeRecord("b", D(2025, 1, 31), "surgery", "invasive-lung-cancer"),  # day 365: interval cancer
        OutcomeRecord("c", D(2025, 3, 2), "surgery", "invasive-lung-cancer"),  # day 366: outside the window
        OutcomeRecord("d", D(2024, 4, 1), "biopsy", "benign"),
    ]
    o = compute_audit(exams, outcomes, OPTS)["outcomes"]
    assert (o["screen_detected"], o["interval_cancers"], o["lung_cancers"]) == (1, 1, 3)
    assert o["ppv_pct"] == pytest.approx(50.0) and o["detection_rate_per_1000"] == pytest.approx(250.0)


def test_lung_rads_definitions_and_rounds_count_earlier_exams() -> None:
    exams = [exam(1, "a", D(2023, 1, 1), "1"), exam(2, "a", D(2024, 1, 1), "3"), exam(3, "b", D(2024, 5, 1), "2")]
    a = compute_audit(exams, [], AuditOptions(D(2024, 1, 1), D(2024, 12, 31), D(2025, 1, 1), protocol="lung-rads-2022"))
    assert (a["positive"], a["negative"], a["exams"]) == (1, 1, 2)
    assert [(r["round"], r["exams"]) for r in a["per_round"]] == [(1, 1), (2, 1)]
    assert a["outcomes"]["recorded"] == 0


def test_nlcsp_eligibility() -> None:
    assert eligible_nlcsp(60, "current", 30, None, 1) is True
    assert eligible_nlcsp(60, "former", 35, 9.9, 1) is True
    assert eligible_nlcsp(60, "former", 35, 10, 1) is False
    assert eligible_nlcsp(71, "current", 40, None, 1) is False
    assert eligible_nlcsp(60, "current", None, None, 1) is None
    assert eligible_nlcsp(60, "never", None, None, None) is False
