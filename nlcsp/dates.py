"""Calendar arithmetic used by the protocol: months between two dates, and date + N months.

Note 2: "The timing of follow-up LDCT is from the date of the exam being interpreted";
follow-up is counted in calendar months, and a day that does not exist in the target
month is clamped to that month's last day (31 Aug + 6 months = 28/29 Feb).
"""

from __future__ import annotations

import calendar
import datetime as dt


def add_months(date: dt.date, months: int) -> dt.date:
    """``date`` plus ``months`` calendar months, clamped to the end of the month."""
    total = date.year * 12 + (date.month - 1) + months
    year, month0 = divmod(total, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return dt.date(year, month0 + 1, min(date.day, last_day))


def months_between(start: dt.date, end: dt.date) -> float:
    """Calendar months from ``start`` to ``end`` (``end`` >= ``start``), with a day fraction.

    Whole months are counted with :func:`add_months` (so 2024-06-01 -> 2026-06-01 is
    exactly 24.0 and 2025-08-31 -> 2026-02-28 exactly 6.0); the remaining days are
    divided by the length of the month that follows.
    """
    if end < start:
        raise ValueError(f"months_between: end {end} is before start {start}")
    whole = (end.year - start.year) * 12 + (end.month - start.month)
    while whole > 0 and add_months(start, whole) > end:
        whole -= 1
    anchor = add_months(start, whole)
    if anchor == end:
        return float(whole)
    following = add_months(start, whole + 1)
    return whole + (end - anchor).days / (following - anchor).days
