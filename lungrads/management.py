"""Management of each Lung-RADS v2022 category: descriptor, recommendation, interval and due date.

The interval runs from the date of the exam (as in NLCSP note 2, the same calendar arithmetic:
:func:`nlcsp.dates.add_months`).  4B and 4X have no screening interval (diagnostic work-up).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nlcsp.dates import add_months

DESCRIPTORS: dict[str, str] = {
    "0": "Incomplete",
    "1": "Negative",
    "2": "Benign appearance or behavior",
    "3": "Probably benign",
    "4A": "Suspicious",
    "4B": "Very suspicious",
    "4X": "Very suspicious with additional features",
}
FOLLOW_UP_MONTHS: dict[str, int | None] = {"0": None, "1": 12, "2": 12, "3": 6, "4A": 3, "4B": None, "4X": None}
PET_CT = "PET/CT may be considered if there is a >= 8 mm solid nodule or solid component"
WORK_UP = (
    "Diagnostic chest CT with or without contrast; PET/CT may be considered if there is a >= 8 mm solid"
    " nodule or solid component; tissue sampling; and/or referral for further clinical evaluation"
)
S_MANAGEMENT = "S: significant or potentially significant findings - as appropriate to the specific finding"


@dataclass(frozen=True)
class Management:
    category: str
    descriptor: str
    text: str
    follow_up_months: int | None
    due_date: dt.date | None


def management_for(
    category: str,
    exam_date: dt.date,
    *,
    s_modifier: bool = False,
    category0_months: int | None = None,
    category0_reason: str = "infection",
    pet_ct: bool = False,
) -> Management:
    """Management of an exam of ``category`` on ``exam_date``.

    ``category0_reason``: "infection" (1-3 month LDCT, ``category0_months`` if the reader chose),
    "prior" (comparison with the prior chest CT being located) or "incomplete" (additional LDCT);
    ``pet_ct``: a >= 8 mm solid nodule or solid component at 4A (PET/CT may be considered).
    """
    if category not in DESCRIPTORS:
        raise ValueError(f"category must be one of {', '.join(DESCRIPTORS)} (got {category!r})")
    months = FOLLOW_UP_MONTHS[category]
    if category == "0":
        if category0_reason == "prior":
            text = "Comparison to prior chest CT (being located)"
        elif category0_reason == "incomplete":
            text = "Additional lung cancer screening CT imaging needed (part or all of the lungs cannot be evaluated)"
        elif category0_months is not None:
            if category0_months not in (1, 2, 3):
                raise ValueError(f"Category 0 follow-up must be 1, 2 or 3 months (got {category0_months})")
            months = category0_months
            text = f"{months}-month LDCT (findings suggestive of an inflammatory or infectious process)"
        else:
            text = "1-3 month LDCT (findings suggestive of an inflammatory or infectious process)"
    elif category in ("1", "2"):
        text = "Continue annual screening with LDCT in 12 months"
    elif category == "3":
        text = "6-month LDCT"
    elif category == "4A":
        text = "3-month LDCT" + (f"; {PET_CT}" if pet_ct else "")
    else:
        text = WORK_UP
    if s_modifier:
        text += "; " + S_MANAGEMENT
    due = add_months(exam_date, months) if months is not None else None
    return Management(category, DESCRIPTORS[category], text, months, due)
