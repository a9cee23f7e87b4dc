"""Management of each NLCSP category: descriptor, recommendation, interval and due date.

Both category tables give the same management per category; note 2: "The timing of
follow-up LDCT is from the date of the exam being interpreted" (12-month follow-up of
an exam on 2026-06-01 is due 2027-06-01).  Category 0 (note 8a): the reporting
radiologist stipulates 1, 2 or 3 months.  Categories 5 and 6 (note 12): referral to a
Respiratory Physician linked to a lung cancer MDT, after which management is no longer
screening.  Note 14: a previous Category 5/6 lesion proven benign resumes screening at
the 24-month LDCT (that is Category 1 management).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nlcsp.dates import add_months

DESCRIPTORS: dict[str, str] = {
    "0": "Incomplete",
    "1": "Very low risk",
    "2": "Low risk",
    "3": "Low to moderate risk",
    "4": "Moderate risk",
    "5": "High risk",
    "6": "Very high risk",
}
ADDITIONAL_FINDINGS_DESCRIPTOR = "Actionable additional findings"

REFERRAL = "Refer to Respiratory Physician linked to a lung cancer multidisciplinary team"
CONSIDER_REFERRAL = (
    "Consider referral to Respiratory Physician linked to a lung cancer multidisciplinary team"
    " unless stability is strongly radiologically reassuring"
)
ADDITIONAL_FINDINGS_MANAGEMENT = (
    "Actionable additional findings: as appropriate to the specific finding (NLCSP Additional Findings Guidelines)"
)

FOLLOW_UP_MONTHS: dict[str, int | None] = {"0": None, "1": 24, "2": 12, "3": 6, "4": 3, "5": None, "6": None}


@dataclass(frozen=True)
class Management:
    """What the participant should have next."""

    category: str
    descriptor: str
    text: str
    follow_up_months: int | None  # None for referral, and for Category 0 unless the reader chose
    due_date: dt.date | None


def management_for(
    category: str,
    exam_date: dt.date,
    *,
    additional_findings: bool = False,
    category0_months: int | None = None,
    consider_referral: bool = False,
) -> Management:
    """Management of an exam of ``category`` reported on ``exam_date`` (note 2).

    ``category0_months`` is the interval (1, 2 or 3) the radiologist stipulates for
    Category 0 (note 8a); ``consider_referral`` words Category 5 as note 7 does for a
    stable previous Category 5/6 lesion; ``additional_findings`` appends the A
    recommendation (note 15).
    """
    if category not in DESCRIPTORS:
        raise ValueError(f"category must be one of 0..6 (got {category!r})")
    months = FOLLOW_UP_MONTHS[category]
    if category == "0":
        if category0_months is not None:
            if category0_months not in (1, 2, 3):
                raise ValueError(f"Category 0 follow-up must be 1, 2 or 3 months (got {category0_months})")
            months = category0_months
            text = f"{months}-month LDCT (suspected inflammatory or infectious process)"
        else:
            text = "1-, 2-, or 3-month LDCT (interval stipulated by the reporting radiologist)"
    elif category in ("5", "6"):
        text = CONSIDER_REFERRAL if (consider_referral and category == "5") else REFERRAL
    else:
        text = f"{months}-month LDCT"
    if additional_findings:
        text += "; " + ADDITIONAL_FINDINGS_MANAGEMENT
    due = add_months(exam_date, months) if months is not None else None
    return Management(category, DESCRIPTORS[category], text, months, due)
