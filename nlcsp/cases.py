"""The case JSON (``noduled.case/1``) in, the assessment JSON (``noduled.assessment/1``) out.

:func:`parse_case` validates a decoded JSON object and builds a :class:`nlcsp.types.Case`;
every error is a :class:`CaseError` whose message starts with the path of the offending
field (``nodules[0].priors[1].date: ...``).  Optional fields may be omitted (defaults:
false / null / []).  Keys the schema does not know are reported in ``Case.warnings``
(or rejected with ``strict=True``).  :func:`assessment_to_json` is the presentation
step: it rounds (percent and days to 0.1, diameters to 0.1 mm, PanCan to 4 decimals).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from nlcsp.types import (
    AIRWAYS,
    CATEGORIES,
    COMPOSITIONS,
    CYST_CHANGES,
    CYSTS,
    LUNG_RADS_CATEGORIES,
    Assessment,
    Case,
    ExamFindings,
    Nodule,
    NoduleAssessment,
    Participant,
    Prior,
)

CASE_SCHEMA = "noduled.case/2"
# /2 adds to each prior what note 6 and the part-solid rows need (composition, solid component, maximal axial
# diameter); every /1 document is a valid /2 document, so both are accepted.
CASE_SCHEMAS: tuple[str, ...] = ("noduled.case/1", CASE_SCHEMA)
ASSESSMENT_SCHEMA = "noduled.assessment/1"

# which cyst_change goes with which cyst (follow-up table, atypical pulmonary cyst rows)
CYST_CHANGE_REQUIRES: dict[str, str] = {
    "growing-cystic-component": "thick-walled",
    "growing-wall": "thick-walled",
    "newly-multilocular": "multilocular",
    "growing-multilocular": "multilocular",
    "increased-loculation-or-opacity": "multilocular",
}


class CaseError(ValueError):
    """The case cannot be categorized; the message starts with the field path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        # a message that already starts with the field's name ("exam_date 2099-01-01 is after today") is not prefixed
        named = not path or message.startswith(path + " ")
        super().__init__(message if named else f"{path}: {message}")


_TOP_KEYS = {"schema", "exam_date", "screening_round", "participant", "exam_findings", "nodules"}
_PARTICIPANT_KEYS = {"age_years", "sex", "family_history_lung_cancer", "emphysema"}
_FINDINGS_KEYS = {
    "infection_or_inflammation",
    "suspicious_features",
    "actionable_additional_findings",
    "nodule_count",
    "infection_follow_up_months",
    # Lung-RADS (lungrads reads them; the schema is shared)
    "prior_ct_being_located",
    "lungs_not_evaluable",
    "significant_findings",
}
_NODULE_KEYS = {
    "id",
    "composition",
    "volume_mm3",
    "mean_diameter_mm",
    "max_axial_diameter_mm",
    "solid_component_volume_mm3",
    "solid_component_mean_diameter_mm",
    "upper_lobe",
    "spiculated",
    "benign_calcification",
    "fat",
    "juxtapleural_typical",
    "airway",
    "cyst",
    "cyst_change",
    "cyst_fluid_containing",
    "cyst_multiple",
    "proven_benign",
    "additional_suspicious_features",  # Lung-RADS 4X
    "priors",
}
_PRIOR_KEYS_1 = {"date", "volume_mm3", "mean_diameter_mm", "category", "pre_screening"}
_PRIOR_KEYS = _PRIOR_KEYS_1 | {  # noduled.case/2
    "composition",
    "solid_component_volume_mm3",
    "solid_component_mean_diameter_mm",
    "max_axial_diameter_mm",
    "lung_rads_category",  # Lung-RADS v2022 category reported then
}


class _Reader:
    """Typed access to one JSON object, naming the field in every error."""

    def __init__(self, obj: Any, path: str, known: set[str], warnings: list[str], strict: bool) -> None:
        if not isinstance(obj, dict):
            raise CaseError(path or "case", f"must be a JSON object (got {_kind(obj)})")
        self.obj = obj
        self.path = path
        unknown = sorted(set(obj) - known)
        for key in unknown:
            message = f"unknown field (allowed: {', '.join(sorted(known))})"
            if strict:
                raise CaseError(self.at(key), message)
            warnings.append(f"{self.at(key)}: {message}; ignored")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        return self.obj.get(key)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise CaseError(self.at(key), f"must be true or false (got {value!r})")
        return value

    def number(self, key: str, *, positive: bool = True, required: bool = False) -> float | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise CaseError(self.at(key), "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CaseError(self.at(key), f"must be a number (got {value!r})")
        if positive and not value > 0:
            raise CaseError(self.at(key), f"must be greater than 0 (got {value!r})")
        return float(value)

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CaseError(self.at(key), f"must be an integer from {low} to {high} (got {value!r})")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise CaseError(self.at(key), f"is required (one of {', '.join(allowed)})")
            return None
        if value not in allowed:
            raise CaseError(self.at(key), f"must be one of {', '.join(allowed)} or null (got {value!r})")
        return str(value)

    def date(self, key: str) -> dt.date:
        value = self.obj.get(key)
        if value is None:
            raise CaseError(self.at(key), "is required (YYYY-MM-DD)")
        if isinstance(value, str):
            text = value.strip()
            if len(text) == 8 and text.isdigit():  # DICOM DA
                text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                pass
        raise CaseError(self.at(key), f"must be a date YYYY-MM-DD (got {value!r})")


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _category(r: _Reader, key: str) -> str | None:
    value = r.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value not in CATEGORIES:
        raise CaseError(r.at(key), f'must be a category "0".."6" or null (got {r.get(key)!r})')
    return str(value)


def _lung_rads_category(r: _Reader, key: str) -> str | None:
    value = r.get(key)
    if value is None:
        return None
    text = str(value).strip().upper() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text not in LUNG_RADS_CATEGORIES:
        raise CaseError(
            r.at(key), f"must be a Lung-RADS category {', '.join(LUNG_RADS_CATEGORIES)} or null (got {value!r})"
        )
    return text


def _strings(r: _Reader, key: str) -> tuple[str, ...]:
    value = r.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CaseError(r.at(key), f"must be an array of non-empty strings (got {value!r})")
    return tuple(v.strip() for v in value)


def parse_case(
    obj: Any,
    *,
    strict: bool = False,
    today: dt.date | None = None,
    extra_top_keys: frozenset[str] = frozenset(),
    extra_nodule_keys: frozenset[str] = frozenset(),
) -> Case:
    """Validate a decoded ``noduled.case/2`` (or ``/1``) object and build the :class:`Case`.

    Raises :class:`CaseError` naming the field.  ``strict`` also rejects unknown keys and a
    missing ``schema``.  ``today`` (default: the system date) is the date an exam may not be
    after.  ``extra_*_keys`` are keys another protocol's reader handles (``lungrads``): not
    reported as unknown.
    """
    warnings: list[str] = []
    top = _Reader(obj, "", _TOP_KEYS | extra_top_keys, warnings, strict)
    schema = top.get("schema")
    if schema is None and strict:
        raise CaseError("schema", f"is required with --strict ({' or '.join(map(repr, CASE_SCHEMAS))})")
    if schema is not None and schema not in CASE_SCHEMAS:
        raise CaseError("schema", f"must be one of {', '.join(map(repr, CASE_SCHEMAS))} (got {schema!r})")
    prior_keys = _PRIOR_KEYS_1 if schema == "noduled.case/1" else _PRIOR_KEYS
    exam_date = top.date("exam_date")
    today = today if today is not None else dt.date.today()
    if exam_date > today + dt.timedelta(days=1):  # one day of grace: the scanner's time zone may be ahead of ours
        raise CaseError("exam_date", f"exam_date {exam_date} is after today ({today})")
    screening_round = top.choice("screening_round", ("baseline", "follow-up"), required=True)

    p = _Reader(top.get("participant") or {}, "participant", _PARTICIPANT_KEYS, warnings, strict)
    age = p.number("age_years")
    if age is not None and not 18 <= age <= 120:
        raise CaseError("participant.age_years", f"must be an age in years from 18 to 120 (got {age:g})")
    participant = Participant(
        age_years=age,
        sex=p.choice("sex", ("F", "M")),  # type: ignore[arg-type]
        family_history_lung_cancer=p.boolean("family_history_lung_cancer"),
        emphysema=p.boolean("emphysema"),
    )

    f = _Reader(top.get("exam_findings") or {}, "exam_findings", _FINDINGS_KEYS, warnings, strict)
    findings = ExamFindings(
        infection_or_inflammation=f.boolean("infection_or_inflammation"),
        suspicious_features=f.boolean("suspicious_features"),
        actionable_additional_findings=f.boolean("actionable_additional_findings"),
        nodule_count=f.integer("nodule_count", 1, 10_000),
        infection_follow_up_months=f.integer("infection_follow_up_months", 1, 3),
        prior_ct_being_located=f.boolean("prior_ct_being_located"),
        lungs_not_evaluable=f.boolean("lungs_not_evaluable"),
        significant_findings=_strings(f, "significant_findings"),
    )

    raw_nodules = top.get("nodules")
    if raw_nodules is None:
        raw_nodules = []
    if not isinstance(raw_nodules, list):
        raise CaseError("nodules", f"must be an array (got {_kind(raw_nodules)})")
    nodules = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_nodules):
        nodule = _parse_nodule(raw, i, exam_date, warnings, strict, prior_keys, extra_nodule_keys)
        if nodule.id in seen:
            raise CaseError(f"nodules[{i}].id", f"duplicates nodules[{seen[nodule.id]}].id ({nodule.id!r})")
        seen[nodule.id] = i
        nodules.append(nodule)
    return Case(exam_date, screening_round, participant, findings, tuple(nodules), tuple(warnings))  # type: ignore[arg-type]


def _parse_nodule(
    raw: Any,
    i: int,
    exam_date: dt.date,
    warnings: list[str],
    strict: bool,
    prior_keys: set[str],
    extra_keys: frozenset[str],
) -> Nodule:
    path = f"nodules[{i}]"
    r = _Reader(raw, path, _NODULE_KEYS | extra_keys, warnings, strict)
    ident = r.get("id")
    if ident is None:
        ident = str(i + 1)
    elif isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    elif not isinstance(ident, str) or not ident.strip():
        raise CaseError(r.at("id"), f"must be a non-empty string (got {ident!r})")
    cyst = r.choice("cyst", CYSTS)
    airway = r.choice("airway", AIRWAYS)
    composition = r.choice("composition", COMPOSITIONS, required=cyst is None and airway is None)
    cyst_change = r.choice("cyst_change", CYST_CHANGES)
    if cyst_change is not None:
        needed = CYST_CHANGE_REQUIRES[cyst_change]
        if cyst != needed:
            raise CaseError(r.at("cyst_change"), f"{cyst_change!r} applies to a {needed} cyst (cyst is {cyst!r})")
    for flag in ("cyst_fluid_containing", "cyst_multiple"):
        if r.boolean(flag) and cyst is None:
            raise CaseError(r.at(flag), "is true but the nodule is not a cyst (cyst is null)")
    raw_priors = r.get("priors")
    if raw_priors is None:
        raw_priors = []
    if not isinstance(raw_priors, list):
        raise CaseError(r.at("priors"), f"must be an array (got {_kind(raw_priors)})")
    priors: list[Prior] = []
    for j, raw_prior in enumerate(raw_priors):
        q = _Reader(raw_prior, f"{path}.priors[{j}]", prior_keys, warnings, strict)
        date = q.date("date")
        if not date < exam_date:
            raise CaseError(q.at("date"), f"must be before the exam date {exam_date} (got {date})")
        for k, other in enumerate(priors):
            if other.date == date:
                raise CaseError(q.at("date"), f"duplicates {path}.priors[{k}].date ({date})")
        prior = Prior(
            date=date,
            volume_mm3=q.number("volume_mm3"),
            mean_diameter_mm=q.number("mean_diameter_mm"),
            category=_category(q, "category"),
            pre_screening=q.boolean("pre_screening"),
            composition=q.choice("composition", COMPOSITIONS),  # type: ignore[arg-type]
            solid_component_volume_mm3=q.number("solid_component_volume_mm3", positive=False),
            solid_component_mean_diameter_mm=q.number("solid_component_mean_diameter_mm", positive=False),
            max_axial_diameter_mm=q.number("max_axial_diameter_mm"),
            lung_rads_category=_lung_rads_category(q, "lung_rads_category"),
        )
        _plausible(
            q.path,
            prior.volume_mm3,
            prior.mean_diameter_mm,
            prior.solid_component_volume_mm3,
            prior.solid_component_mean_diameter_mm,
        )
        priors.append(prior)
    priors.sort(key=lambda p: p.date)
    _plausible(
        path,
        r.number("volume_mm3"),
        r.number("mean_diameter_mm"),
        r.number("solid_component_volume_mm3", positive=False),
        r.number("solid_component_mean_diameter_mm", positive=False),
    )
    return Nodule(
        id=ident,
        composition=composition,  # type: ignore[arg-type]
        volume_mm3=r.number("volume_mm3"),
        mean_diameter_mm=r.number("mean_diameter_mm"),
        max_axial_diameter_mm=r.number("max_axial_diameter_mm"),
        solid_component_volume_mm3=r.number("solid_component_volume_mm3", positive=False),
        solid_component_mean_diameter_mm=r.number("solid_component_mean_diameter_mm", positive=False),
        upper_lobe=r.boolean("upper_lobe"),
        spiculated=r.boolean("spiculated"),
        benign_calcification=r.boolean("benign_calcification"),
        fat=r.boolean("fat"),
        juxtapleural_typical=r.boolean("juxtapleural_typical"),
        airway=airway,  # type: ignore[arg-type]
        cyst=cyst,  # type: ignore[arg-type]
        cyst_change=cyst_change,  # type: ignore[arg-type]
        cyst_fluid_containing=r.boolean("cyst_fluid_containing"),
        cyst_multiple=r.boolean("cyst_multiple"),
        proven_benign=r.boolean("proven_benign"),
        additional_suspicious_features=r.boolean("additional_suspicious_features"),
        priors=tuple(priors),
        index=i,
    )


def _plausible(
    path: str, volume: float | None, diameter: float | None, solid_volume: float | None, solid_diameter: float | None
) -> None:
    """A solid component is part of the nodule: it cannot be larger than the whole."""
    for part, whole, unit in (
        ("solid_component_volume_mm3", "volume_mm3", volume),
        ("solid_component_mean_diameter_mm", "mean_diameter_mm", diameter),
    ):
        value = solid_volume if part == "solid_component_volume_mm3" else solid_diameter
        if value is not None and unit is not None and value > unit:
            raise CaseError(
                f"{path}.{part}",
                f"{path}.{part} ({value:g}) exceeds {whole} ({unit:g}): the solid component is part of the nodule",
            )
        if value is not None and value < 0:
            raise CaseError(f"{path}.{part}", f"must be 0 or more (got {value:g})")


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def nodule_to_json(a: NoduleAssessment) -> dict[str, Any]:
    """One nodule of the assessment JSON."""
    return {
        "id": a.id,
        "category": a.category,
        "status": a.status,
        "volume_change_pct": _round(a.volume_change_pct, 1),
        "vdt_days": _round(a.vdt_days, 1),
        "diameter_change_mm": _round(a.diameter_change_mm, 1),
        "comparison_date": _date(a.comparison_date),
        "pancan_risk_pct": _round(a.pancan_risk_pct, 4),
        "rule": a.rule,
        "previous_category": a.previous_category,
        "previous_category_date": _date(a.previous_category_date),
        "previous_category_derived": a.previous_category_derived,
        "derived_prior_categories": {d.isoformat(): c for d, c in a.derived_prior_categories},
        "stable_since": _date(a.stable_since),
        "stable_months": _round(a.stable_months, 1),
    }


def assessment_to_json(assessment: Assessment) -> dict[str, Any]:
    """The ``noduled.assessment/1`` object of an :class:`Assessment`."""
    return {
        "schema": ASSESSMENT_SCHEMA,
        "protocol": "nlcsp",  # the engine (lungrads writes "lung-rads-2022")
        "exam_date": assessment.exam_date.isoformat(),
        "screening_round": assessment.screening_round,
        "category": assessment.category,
        "additional_findings": assessment.additional_findings,
        "descriptor": assessment.descriptor,
        "management": assessment.management,
        "follow_up_months": assessment.follow_up_months,
        "due_date": _date(assessment.due_date),
        "rule": assessment.rule,
        "decisive_nodule": assessment.decisive_nodule_id,
        "screen_result": assessment.screen_result,
        "notes": list(assessment.notes),
        "nodules": [nodule_to_json(n) for n in assessment.nodules],
    }
