"""nlcsp.management: the management column of both tables, and note 2 due dates."""

from __future__ import annotations

import datetime as dt

import pytest

from nlcsp.management import management_for

EXAM = dt.date(2026, 6, 1)


@pytest.mark.parametrize(
    "category, descriptor, months, due, text",
    [
        ("0", "Incomplete", None, None, "1-, 2-, or 3-month LDCT"),
        ("1", "Very low risk", 24, dt.date(2028, 6, 1), "24-month LDCT"),
        ("2", "Low risk", 12, dt.date(2027, 6, 1), "12-month LDCT"),  # note 2's own example
        ("3", "Low to moderate risk", 6, dt.date(2026, 12, 1), "6-month LDCT"),
        ("4", "Moderate risk", 3, dt.date(2026, 9, 1), "3-month LDCT"),
        ("5", "High risk", None, None, "Refer to Respiratory Physician linked to a lung cancer multidisciplinary team"),
        (
            "6",
            "Very high risk",
            None,
            None,
            "Refer to Respiratory Physician linked to a lung cancer multidisciplinary team",
        ),
    ],
)
def test_management_column(category, descriptor, months, due, text):
    m = management_for(category, EXAM)
    assert (m.descriptor, m.follow_up_months, m.due_date) == (descriptor, months, due)
    assert m.text.startswith(text)


def test_category0_interval_stipulated_by_the_reader():
    # note 8a: "The reporting radiologist will stipulate a specific follow-up interval (for example 2 months)"
    m = management_for("0", EXAM, category0_months=2)
    assert (m.follow_up_months, m.due_date) == (2, dt.date(2026, 8, 1))
    with pytest.raises(ValueError, match="1, 2 or 3 months"):
        management_for("0", EXAM, category0_months=4)


def test_due_date_clamps_to_month_end():
    assert management_for("3", dt.date(2025, 8, 31)).due_date == dt.date(2026, 2, 28)


def test_additional_findings_and_consider_referral_wording():
    m = management_for("2", EXAM, additional_findings=True)
    assert "Actionable additional findings" in m.text and m.follow_up_months == 12
    assert management_for("5", EXAM, consider_referral=True).text.startswith("Consider referral")


def test_unknown_category_is_rejected():
    with pytest.raises(ValueError, match="category must be one of 0..6"):
        management_for("4A", EXAM)
