"""Plain data of the Lung-RADS engine's output (the input is :class:`nlcsp.types.Case`, the shared schema)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from nlcsp.types import LUNG_RADS_CATEGORIES as CATEGORIES  # one vocabulary (the shared case schema's)
from nlcsp.types import GrowthStatus as Status
from nlcsp.types import ScreeningRound

RANK: dict[str, int] = {c: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class NoduleResult:
    """The Lung-RADS category of one nodule, with the row that decided it."""

    id: str
    category: str | None  # None: not classified (thin-walled cyst ...)
    status: Status
    rule: str
    diameter_change_mm: float | None = None
    comparison_date: dt.date | None = None
    previous_category: str | None = None
    previous_category_derived: bool = False
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class LungRadsAssessment:
    """The Lung-RADS v2022 assessment of one exam."""

    exam_date: dt.date
    screening_round: ScreeningRound
    category: str  # "0", "1", "2", "3", "4A", "4B", "4X"
    s_modifier: bool
    s_findings: tuple[str, ...]
    descriptor: str
    management: str
    follow_up_months: int | None
    due_date: dt.date | None
    rule: str
    decisive_nodule_id: str | None
    nodules: tuple[NoduleResult, ...]
    screen_result: Literal["negative", "positive", "neither"] = "neither"
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The category as reported: "4A", or "4AS" with the S modifier."""
        return self.category + ("S" if self.s_modifier else "")
