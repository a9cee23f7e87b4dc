"""nlcsp.dates: calendar months for follow-up intervals (note 2) and stable durations."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlcsp.dates import add_months, months_between

D = dt.date


@pytest.mark.parametrize(
    "start, months, due",
    [
        (D(2026, 6, 1), 12, D(2027, 6, 1)),  # note 2's example: Category 2, 12 months from the exam date
        (D(2026, 6, 1), 24, D(2028, 6, 1)),
        (D(2026, 1, 31), 1, D(2026, 2, 28)),  # clamped to the end of the month
        (D(2023, 11, 30), 3, D(2024, 2, 29)),  # leap year
        (D(2025, 8, 31), 6, D(2026, 2, 28)),
        (D(2026, 10, 15), 3, D(2027, 1, 15)),  # year boundary
    ],
)
def test_add_months(start, months, due):
    assert add_months(start, months) == due


@pytest.mark.parametrize(
    "start, end, months",
    [
        (D(2024, 6, 1), D(2026, 6, 1), 24.0),
        (D(2025, 12, 3), D(2026, 6, 3), 6.0),
        (D(2025, 8, 31), D(2026, 2, 28), 6.0),
        (D(2026, 1, 1), D(2026, 1, 16), 15 / 31),
        (D(2025, 12, 3), D(2026, 6, 1), 5 + 29 / 31),  # one 6-month follow-up two days early is < 6 months
    ],
)
def test_months_between(start, end, months):
    assert months_between(start, end) == pytest.approx(months)


@given(st.dates(D(2000, 1, 1), D(2040, 1, 1)), st.integers(0, 120))
def test_months_between_inverts_add_months(start, months):
    assert months_between(start, add_months(start, months)) == pytest.approx(months)


def test_end_before_start_is_an_error():
    with pytest.raises(ValueError, match="before start"):
        months_between(D(2026, 1, 2), D(2026, 1, 1))
