"""Lenient conversions of DICOM attribute values as PACS and modalities send them (pydicom's DA)."""

from __future__ import annotations

import datetime as dt

from pydicom.valuerep import DA


def da_to_date(value: object) -> dt.date | None:
    """A DA value ("20260601", possibly with trailing text) as a date; None when absent or invalid."""
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    text = str(value or "").strip()[:8]
    if len(text) < 8 or not text.isdigit():
        return None
    try:
        parsed = DA(text)
    except ValueError:
        return None
    return None if parsed is None else dt.date(parsed.year, parsed.month, parsed.day)


def to_int(value: object) -> int | None:
    """An IS value as an int; None when absent or invalid."""
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def to_float(value: object) -> float | None:
    """A DS/FD value as a float; None when absent or invalid."""
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
