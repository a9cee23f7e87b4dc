"""The Lung-RADS assessment JSON (``noduled.assessment/1`` with ``protocol: "lung-rads-2022"``).

The case is the shared ``noduled.case/2`` (:func:`nlcsp.cases.parse_case`; the keys Lung-RADS
adds -- ``lung_rads_category`` on priors, ``additional_suspicious_features`` on nodules,
``prior_ct_being_located``, ``lungs_not_evaluable``, ``significant_findings`` in
``exam_findings`` -- are part of that schema).  Rounding happens here only.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from lungrads import PROTOCOL, PROTOCOL_NAME, PROTOCOL_VERSION
from lungrads.types import LungRadsAssessment, NoduleResult
from nlcsp.cases import ASSESSMENT_SCHEMA, CaseError
from nlcsp.cases import parse_case as parse_shared_case
from nlcsp.types import Case

__all__ = ["CaseError", "assessment_to_json", "nodule_to_json", "parse_case"]


def parse_case(obj: Any, *, strict: bool = False, today: dt.date | None = None) -> Case:
    """The shared case (:func:`nlcsp.cases.parse_case`) read for Lung-RADS: a prior's ``category`` is the category
    reported then in the protocol being run, so without a ``lung_rads_category`` it is taken as the Lung-RADS
    category (``"4A"`` on a prior of a Lung-RADS case means 4A; INTERPRETATION C1)."""
    moved: set[str] = set()
    if isinstance(obj, dict) and isinstance(obj.get("nodules"), list):
        obj = copy.deepcopy(obj)
        for i, nodule in enumerate(obj["nodules"]):
            priors = nodule.get("priors") if isinstance(nodule, dict) else None
            for j, prior in enumerate(priors if isinstance(priors, list) else []):
                if isinstance(prior, dict) and prior.get("lung_rads_category") is None and "category" in prior:
                    prior["lung_rads_category"] = prior.pop("category")
                    moved.add(f"nodules[{i}].priors[{j}].lung_rads_category")
    try:
        return parse_shared_case(obj, strict=strict, today=today)
    except CaseError as exc:
        if exc.path not in moved:
            raise
        # name the field the case wrote
        raise CaseError(
            exc.path.removesuffix("lung_rads_category") + "category", str(exc)[len(exc.path) + 2 :]
        ) from None


def nodule_to_json(r: NoduleResult) -> dict[str, Any]:
    return {
        "id": r.id,
        "category": r.category,
        "status": r.status,
        "diameter_change_mm": round(r.diameter_change_mm, 1) if r.diameter_change_mm is not None else None,
        "comparison_date": r.comparison_date.isoformat() if r.comparison_date else None,
        "rule": r.rule,
        "previous_category": r.previous_category,
        "previous_category_derived": r.previous_category_derived,
    }


def assessment_to_json(a: LungRadsAssessment) -> dict[str, Any]:
    return {
        "schema": ASSESSMENT_SCHEMA,
        "protocol": PROTOCOL,
        "protocol_name": PROTOCOL_NAME,
        "protocol_version": PROTOCOL_VERSION,
        "exam_date": a.exam_date.isoformat(),
        "screening_round": a.screening_round,
        "category": a.category,
        "s_modifier": a.s_modifier,
        "additional_findings": a.s_modifier,  # the same flag under the NLCSP document's name (readers of both)
        "s_findings": list(a.s_findings),
        "label": a.label,
        "descriptor": a.descriptor,
        "management": a.management,
        "follow_up_months": a.follow_up_months,
        "due_date": a.due_date.isoformat() if a.due_date else None,
        "rule": a.rule,
        "decisive_nodule": a.decisive_nodule_id,
        "screen_result": a.screen_result,
        "notes": list(a.notes),
        "nodules": [nodule_to_json(n) for n in a.nodules],
    }
