"""Lenient reading of SR content trees (PS3.3 C.17.3) with plain pydicom.

Used by the readers (:mod:`dicom_sr.seeds`, :mod:`dicom_sr.read_report`,
``noduled report``) so that objects from any vendor can be read: concepts
are compared by ``(code value, coding scheme)``, nothing is validated that
the reader does not need, and missing optional attributes yield ``None``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

Key = tuple[str, str]


def concept(item: Dataset) -> Key:
    """``(CodeValue, CodingSchemeDesignator)`` of an item's concept name ("", "") if none."""
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return ("", "")
    return code_key(seq[0])


def code_key(code: Dataset) -> Key:
    return (
        str(code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue") or ""),
        str(code.get("CodingSchemeDesignator") or ""),
    )


def meaning(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].get("CodeMeaning") or "") if seq else ""


def children(item: Dataset) -> list[Dataset]:
    return list(item.get("ContentSequence") or [])


def walk(item: Dataset) -> Iterator[Dataset]:
    """Every descendant of ``item``, depth first, in document order."""
    for child in children(item):
        yield child
        yield from walk(child)


def value_type(item: Dataset) -> str:
    return str(item.get("ValueType") or "").upper()


def floats(values: Any) -> np.ndarray:
    if values is None:
        return np.zeros((0,), float)
    if isinstance(values, (int, float)):
        values = [values]
    return np.asarray([float(v) for v in values], float)


def code_value(item: Dataset) -> Key | None:
    """Key of a CODE item's value."""
    seq = item.get("ConceptCodeSequence")
    return code_key(seq[0]) if seq else None


def code_value_meaning(item: Dataset) -> str:
    seq = item.get("ConceptCodeSequence")
    return str(seq[0].get("CodeMeaning") or "") if seq else ""


def num(item: Dataset) -> tuple[float, str] | None:
    """(value, unit code value) of a NUM item; None when it has no measured value."""
    seq = item.get("MeasuredValueSequence")
    if not seq:
        return None
    mv = seq[0]
    value = mv.get("NumericValue")
    if value is None or value == "":
        return None
    if not isinstance(value, (int, float, str)) and hasattr(value, "__len__"):
        value = value[0]
    units = mv.get("MeasurementUnitsCodeSequence")
    unit = str(units[0].get("CodeValue") or "") if units else ""
    return float(value), unit


def date(item: Dataset) -> dt.date | None:
    text = str(item.get("Date") or "")
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def text(item: Dataset) -> str:
    return str(item.get("TextValue") or "")


def uid(item: Dataset) -> str:
    return str(item.get("UID") or "")


def first(item: Dataset, key: Key, vt: str | None = None) -> Dataset | None:
    """First direct child with this concept (and value type)."""
    for child in children(item):
        if concept(child) == key and (vt is None or value_type(child) == vt):
            return child
    return None
