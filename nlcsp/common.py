"""Protocol-independent arithmetic shared by the NLCSP and Lung-RADS engines (standard library only).

Both protocols measure the same things and compare them the same way; each concept
lives here once so that a fix reaches both engines (``nlcsp`` and ``lungrads``):

* percent volume change and volume doubling time (NLCSP note 6; Lung-RADS audit);
* the mean diameter (mean of long and short axis, each to 0.1 mm, mean to 0.1 mm:
  NLCSP note 5b, Lung-RADS v2022) and the sphere equivalents of a volume / diameter;
* the boundary conventions: half-open thresholds ("< 6 mm" / ">= 6 mm"), "more than
  1.5 mm" strict, and one float tolerance for measurements given to 0.1 mm / 1 mm3
  (7.3 - 5.8 mm is 1.5 mm, not 1.4999999999999996);
* :class:`Size`, a size compared with the protocols' "mm3 (mm)" thresholds;
* the scaffolding of the category tables: the size comparisons of the rows (:func:`below`,
  :func:`solid_below`: a :class:`~nlcsp.cases.CaseError` naming the case fields when the size
  is missing) and the first row that applies (:func:`first_row`).  Each protocol keeps its own
  ``Facts`` and ``Row`` and its tables in its own ``categorize`` module.

Calendar arithmetic (months between dates, date + N months) is :mod:`nlcsp.dates`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Protocol, TypeVar

from nlcsp.cases import CaseError
from nlcsp.types import Nodule

EPS = 1e-9  # measurements are given to 0.1 mm / 1 mm3: guards 7.3 - 5.8 = 1.4999999999999996
DIAMETER_LIMIT_MM = 1.5  # NLCSP note 6 / 11f and Lung-RADS growth: "more than 1.5 mm"


def more_than(value: float, limit: float) -> bool:
    """``value > limit`` for measured values ("more than 1.5 mm": +1.5 mm is not more)."""
    return value > limit + EPS


def at_least(value: float, limit: float) -> bool:
    """``value >= limit`` for measured values ("decrease of 1.5 mm or more")."""
    return value >= limit - EPS


def percent_volume_change(v1: float, v2: float) -> float:
    """Percent change from volume ``v1`` to ``v2`` (mm3): (v2 - v1) / v1 * 100."""
    if not v1 > 0:
        raise ValueError(f"percent_volume_change: earlier volume must be > 0 mm3 (got {v1})")
    return (v2 - v1) / v1 * 100.0


def volume_doubling_time_days(v1: float, v2: float, days: float) -> float:
    """Volume doubling time Δt·ln 2 / ln(V2/V1) in days.

    Negative for a shrinking nodule (the halving time), ``math.inf`` when V2 == V1.
    """
    if not (v1 > 0 and v2 > 0):
        raise ValueError(f"volume_doubling_time_days: volumes must be > 0 mm3 (got {v1}, {v2})")
    if not days > 0:
        raise ValueError(f"volume_doubling_time_days: interval must be > 0 days (got {days})")
    ratio = math.log(v2 / v1)
    if ratio == 0.0:
        return math.inf
    return days * math.log(2.0) / ratio


def round_mm(value: float) -> float:
    """Round to 0.1 mm, halves up (5.25 -> 5.3), as a reader writes a diameter."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def mean_diameter_mm(long_axis_mm: float, short_axis_mm: float) -> float:
    """The mean diameter: long and short axis each to 0.1 mm, their mean to 0.1 mm."""
    return round_mm((round_mm(long_axis_mm) + round_mm(short_axis_mm)) / 2.0)


def sphere_diameter_mm(volume_mm3: float) -> float:
    """The diameter of the sphere of ``volume_mm3``: (6V/π)^(1/3)."""
    return float((6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0))


def sphere_volume_mm3(diameter_mm: float) -> float:
    """The volume of the sphere of ``diameter_mm``: π d³ / 6."""
    return math.pi * diameter_mm**3 / 6.0


def doubled_within_a_year(
    exam_date: dt.date,
    volume_mm3: float | None,
    mean_diameter_mm: float | None,
    priors: Iterable[tuple[dt.date, float | None, float | None]],
) -> dt.date | None:
    """The date of the first prior at most 365 days before ``exam_date`` against which the size at least
    doubled: the volume (when both have one), else the sphere equivalent of the mean diameter ((d2/d1)^3 >= 2).
    NLCSP note 13 and Lung-RADS 4X: "a ground-glass nodule that doubles in size in one year"."""
    for date, prior_volume, prior_diameter in priors:
        if (exam_date - date).days > 365:
            continue
        if volume_mm3 is not None and prior_volume is not None:
            if volume_mm3 >= 2.0 * prior_volume:
                return date
        elif mean_diameter_mm is not None and prior_diameter is not None:
            if (mean_diameter_mm / prior_diameter) ** 3 >= 2.0:
                return date
    return None


@dataclass(frozen=True)
class Size:
    """A size compared with a protocol's "mm3 (mm)" thresholds.

    ``below`` is the half-open convention of both protocols: "< 6 mm" is below, 6.0 mm
    is not ("6 to < 8 mm").  Volumes are compared with the mm3 threshold, diameters
    with the mm one, with the :data:`EPS` tolerance (a diameter of 6.0 mm is 6 mm).
    """

    value: float
    unit: str  # "mm3" or "mm"
    field: str  # the case field it came from

    def below(self, threshold: tuple[float, float]) -> bool:
        limit = threshold[0] if self.unit == "mm3" else threshold[1]
        return self.value < limit - EPS

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit} ({self.field})"


# ----------------------------------------------------------------------------- the tables' scaffolding


class NoduleFacts(Protocol):
    """What the table scaffolding reads from a protocol's per-nodule ``Facts``; ``SIZE_FIELDS`` and
    ``SOLID_FIELDS`` are the case fields that give a size / a solid component, in the protocol's order."""

    SIZE_FIELDS: ClassVar[tuple[str, ...]]
    SOLID_FIELDS: ClassVar[tuple[str, ...]]

    @property
    def nodule(self) -> Nodule: ...
    @property
    def status(self) -> str: ...
    @property
    def size(self) -> Size | None: ...
    @property
    def solid(self) -> Size | None: ...


def _either(fields: tuple[str, ...]) -> str:
    return fields[0] if len(fields) == 1 else f"{', '.join(fields[:-1])} or {fields[-1]}"


def required_size(f: NoduleFacts) -> Size:
    """The nodule's size for a row that compares it, else a :class:`CaseError` at the protocol's first choice."""
    if f.size is None:
        raise CaseError(
            f"nodules[{f.nodule.index}].{f.SIZE_FIELDS[0]}",
            f"nodule {f.nodule.id!r} needs a size ({_either(f.SIZE_FIELDS)})",
        )
    return f.size


def required_solid(f: NoduleFacts) -> Size:
    """The part-solid nodule's solid component for a row that compares it, else a :class:`CaseError`."""
    if f.solid is None:
        raise CaseError(
            f"nodules[{f.nodule.index}].{f.SOLID_FIELDS[0]}",
            f"part-solid nodule {f.nodule.id!r} ({f.status}): its solid component decides the category;"
            f" give {_either(f.SOLID_FIELDS)}",
        )
    return f.solid


def below(f: NoduleFacts, t: tuple[float, float]) -> bool:
    """The nodule's size is below threshold ``t`` (mm3, mm): "< 6 mm"."""
    return required_size(f).below(t)


def solid_below(f: NoduleFacts, t: tuple[float, float]) -> bool:
    """The solid component is below threshold ``t`` (mm3, mm)."""
    return required_solid(f).below(t)


FactsT_contra = TypeVar("FactsT_contra", contravariant=True)


class TableRow(Protocol[FactsT_contra]):
    """A row of a protocol's table: it applies to a nodule's facts or not."""

    @property
    def applies(self) -> Callable[[FactsT_contra], bool]: ...


RowT = TypeVar("RowT", bound=TableRow[Any])


def first_row(table: Iterable[RowT], f: object) -> RowT | None:
    """The first row of ``table`` that applies to ``f`` (the rows are in ascending category: the lowest one)."""
    for row in table:
        if row.applies(f):
            return row
    return None
