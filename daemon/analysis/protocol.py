"""The typed adapter to and from the protocol engines (pure): participant facts, the case, the assessment read back.

The daemon builds one :class:`nlcsp.types.Case` (the shared case of both engines) and reads the engine's typed
result: :class:`nlcsp.types.Assessment` (``nlcsp``, the default) or :class:`lungrads.types.LungRadsAssessment`
(``lung-rads-2022``, ACR Lung-RADS v2022), chosen by ``[analysis] protocol``; :func:`assess_case` is the one
typed door to both.  An audit protocol (``[analysis] audit_protocol``) is computed alongside by
:func:`audit_case`, recorded and never reported.  The categories the longitudinal record carries on priors
are those of the site's protocol, so for Lung-RADS they are handed over as ``lung_rads_category``
(NLCSP's ``category`` is another scale; :func:`case_for_protocol`).

JSON is only at the edges: :func:`case_to_json` (``noduled.case/2``, what ``noduled categorize`` reads back)
and :attr:`ProtocolAssessment.assessment_json` (the stored ``noduled.assessment/1`` document).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydicom.dataset import Dataset

from daemon.analysis.comparison import ComparisonResult, PriorObservation, case_priors, prior_comparisons
from daemon.analysis.dicomvalues import da_to_date
from daemon.analysis.errors import AnalysisError
from dicom_sr.findings import ExamAssessment, NoduleFinding, Participant, ReaderAttributes
from lungrads.types import LungRadsAssessment, NoduleResult
from nlcsp import types as nl
from nlcsp.cases import CASE_SCHEMA


@dataclass(frozen=True)
class SiteDefaults:
    """Participant facts the CT headers do not carry (DESIGN §7 [site])."""

    family_history_lung_cancer: bool = False
    emphysema: bool = False


def participant_from_headers(ct: Dataset, site: SiteDefaults, overrides: dict[str, Any]) -> Participant:
    """Age and sex from the CT header; family history and emphysema from the site defaults."""
    sources: dict[str, str] = {}
    age: int | None = None
    text = str(ct.get("PatientAge") or "").strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] == "Y":
        age, sources["age_years"] = int(text[:3]), "ct-header PatientAge"
    else:
        b, s = da_to_date(ct.get("PatientBirthDate")), da_to_date(ct.get("StudyDate"))
        if b is not None and s is not None:
            age = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
            sources["age_years"] = "ct-header PatientBirthDate"
    sex_raw = str(ct.get("PatientSex") or "").strip().upper()
    sex = sex_raw if sex_raw in ("F", "M") else None
    if sex:
        sources["sex"] = "ct-header PatientSex"
    values: dict[str, Any] = {
        "age_years": age,
        "sex": sex,
        "family_history_lung_cancer": site.family_history_lung_cancer,
        "emphysema": site.emphysema,
    }
    sources.setdefault("family_history_lung_cancer", "site-config")
    sources.setdefault("emphysema", "site-config")
    for key, value in overrides.items():
        if key in values and value is not None:
            values[key] = value
            sources[key] = "participant-file"
    return Participant(sources=sources, **values)


_SOURCE_WORDS = {"participant-file": "participant record", "site-config": "site default"}


def pancan_inputs_note(participant: Participant) -> str:
    """What the SR says about the participant facts PanCan used and where each came from."""
    parts = []
    for key, words in (("family_history_lung_cancer", "family history of lung cancer"), ("emphysema", "emphysema")):
        source = participant.sources.get(key, "site-config")
        parts.append(f"{words} {'yes' if getattr(participant, key) else 'no'} ({_SOURCE_WORDS.get(source, source)})")
    return "PanCan inputs: " + "; ".join(parts)


def _value(characteristic) -> Any:  # type: ignore[no-untyped-def]
    return None if characteristic is None else characteristic.value


def build_case(
    findings: Sequence[NoduleFinding],
    *,
    exam_date: dt.date,
    screening_round: nl.ScreeningRound,
    participant: Participant,
    flags: ReaderAttributes,
    history: Mapping[str, Sequence[PriorObservation]] | None = None,
) -> nl.Case:
    """Stage 5 input: the protocol engine's case of this exam (``history``: prior observations by tracking id)."""
    nodules: list[nl.Nodule] = []
    for f in findings:
        m, c = f.measurement, f.characterization
        if m is None:
            reader_d = f.seed.reader_diameter_mm if f.seed is not None else None
            if reader_d is not None:  # not measurable by noduled: the reader's own length (note 5b), never nothing
                nodules.append(
                    nl.Nodule(
                        id=f.tracking_id,
                        composition=_value(c.composition) or "solid",
                        mean_diameter_mm=reader_d,
                        upper_lobe=bool(_value(c.upper_lobe)),
                        spiculated=bool(_value(c.spiculated)),
                        priors=case_priors((history or {}).get(f.tracking_id, [])),
                        index=len(nodules),
                    )
                )
            continue
        composition: nl.Composition = _value(c.composition) or "solid"
        reliable = not m.quality.volumetry_unreliable
        juxtapleural = bool(_value(c.juxtapleural)) or bool(_value(c.perifissural))
        part_solid = composition == "part-solid"
        nodules.append(
            nl.Nodule(
                id=f.tracking_id,  # "Nodule 1": unique in the exam, readable in the rules
                composition=composition,
                volume_mm3=m.volume_mm3 if reliable else None,
                mean_diameter_mm=m.mean_diameter_mm,
                max_axial_diameter_mm=m.max_axial_diameter_mm,
                solid_component_volume_mm3=m.solid_volume_mm3 if part_solid and reliable else None,
                solid_component_mean_diameter_mm=m.solid_mean_diameter_mm if part_solid else None,
                upper_lobe=bool(_value(c.upper_lobe)),
                spiculated=bool(_value(c.spiculated)),
                benign_calcification=bool(_value(c.benign_calcification)),
                fat=bool(_value(c.fat)),
                # note 9: the criteria other than size (solid, smooth, oval/lentiform/triangular, pleural contact)
                juxtapleural_typical=juxtapleural and composition == "solid" and not bool(_value(c.spiculated)),
                airway=_value(c.airway),
                cyst=_value(c.cyst),
                priors=case_priors((history or {}).get(f.tracking_id, [])),
                index=len(nodules),
            )
        )
    case = nl.Case(
        exam_date=exam_date,
        screening_round=screening_round,
        participant=nl.Participant(
            age_years=participant.age_years,
            sex=participant.sex,
            family_history_lung_cancer=participant.family_history_lung_cancer,
            emphysema=participant.emphysema,
        ),
        exam_findings=nl.ExamFindings(
            infection_or_inflammation=bool(flags.infection_or_inflammation),
            suspicious_features=bool(flags.suspicious_features),
            actionable_additional_findings=bool(flags.actionable_additional_findings),
        ),
        nodules=tuple(nodules),
    )
    _check(case)
    return case


def _check(case: nl.Case) -> None:
    """What ``nlcsp.cases.parse_case`` requires of a case that measurements could break, as AnalysisError."""
    age = case.participant.age_years
    if age is not None and not 18 <= age <= 120:
        raise AnalysisError(
            f"the protocol engine refused the case: participant.age_years must be 18 to 120 (got {age:g})"
        )
    for n in case.nodules:
        for part, value, whole, of in (
            ("solid_component_volume_mm3", n.solid_component_volume_mm3, "volume_mm3", n.volume_mm3),
            (
                "solid_component_mean_diameter_mm",
                n.solid_component_mean_diameter_mm,
                "mean_diameter_mm",
                n.mean_diameter_mm,
            ),
        ):
            if value is not None and of is not None and value > of:
                raise AnalysisError(
                    f"the protocol engine refused the case: {n.id} {part} ({value:g}) exceeds {whole} ({of:g}):"
                    " the solid component is part of the nodule"
                )
        dates = [p.date for p in n.priors]
        if len(set(dates)) != len(dates) or any(d >= case.exam_date for d in dates):
            raise AnalysisError(
                f"the protocol engine refused the case: {n.id} has prior dates {', '.join(map(str, dates))}"
                f" (each once, before the exam date {case.exam_date})"
            )


def case_to_json(case: nl.Case) -> dict[str, Any]:
    """The ``noduled.case/2`` document of ``case`` (the edge: ``noduled categorize`` reads it back as the same case)."""

    def prior(p: nl.Prior) -> dict[str, Any]:
        return {
            "date": p.date.isoformat(),
            "volume_mm3": p.volume_mm3,
            "mean_diameter_mm": p.mean_diameter_mm,
            "category": p.category,
            "pre_screening": p.pre_screening,
            "composition": p.composition,
            "solid_component_volume_mm3": p.solid_component_volume_mm3,
            "solid_component_mean_diameter_mm": p.solid_component_mean_diameter_mm,
            "max_axial_diameter_mm": p.max_axial_diameter_mm,
            "lung_rads_category": p.lung_rads_category,
        }

    def nodule(n: nl.Nodule) -> dict[str, Any]:
        return {
            "id": n.id,
            "composition": n.composition,
            "volume_mm3": n.volume_mm3,
            "mean_diameter_mm": n.mean_diameter_mm,
            "max_axial_diameter_mm": n.max_axial_diameter_mm,
            "solid_component_volume_mm3": n.solid_component_volume_mm3,
            "solid_component_mean_diameter_mm": n.solid_component_mean_diameter_mm,
            "upper_lobe": n.upper_lobe,
            "spiculated": n.spiculated,
            "benign_calcification": n.benign_calcification,
            "fat": n.fat,
            "juxtapleural_typical": n.juxtapleural_typical,
            "airway": n.airway,
            "cyst": n.cyst,
            "cyst_change": n.cyst_change,
            "cyst_fluid_containing": n.cyst_fluid_containing,
            "cyst_multiple": n.cyst_multiple,
            "proven_benign": n.proven_benign,
            "additional_suspicious_features": n.additional_suspicious_features,
            "priors": [prior(p) for p in n.priors],
        }

    p, f = case.participant, case.exam_findings
    return {
        "schema": CASE_SCHEMA,
        "exam_date": case.exam_date.isoformat(),
        "screening_round": case.screening_round,
        "participant": {
            "age_years": p.age_years,
            "sex": p.sex,
            "family_history_lung_cancer": p.family_history_lung_cancer,
            "emphysema": p.emphysema,
        },
        "exam_findings": {
            "infection_or_inflammation": f.infection_or_inflammation,
            "suspicious_features": f.suspicious_features,
            "actionable_additional_findings": f.actionable_additional_findings,
            "nodule_count": f.nodule_count,
            "infection_follow_up_months": f.infection_follow_up_months,
            "prior_ct_being_located": f.prior_ct_being_located,
            "lungs_not_evaluable": f.lungs_not_evaluable,
            "significant_findings": list(f.significant_findings),
        },
        "nodules": [nodule(n) for n in case.nodules],
    }


# --------------------------------------------------------------------------- the protocol engines
Protocol = Literal["nlcsp", "lung-rads-2022"]
PROTOCOLS: tuple[Protocol, ...] = ("nlcsp", "lung-rads-2022")
PROTOCOL_VERSIONS: dict[str, str] = {"nlcsp": "", "lung-rads-2022": "v2022"}
_CATEGORIES: dict[str, frozenset[str]] = {
    "nlcsp": frozenset(nl.CATEGORIES),
    "lung-rads-2022": frozenset(nl.LUNG_RADS_CATEGORIES),
}


class ProtocolError(ValueError):
    """The protocol engine refused the case (the message names the field), or there is no such protocol."""


@dataclass(frozen=True)
class ProtocolAssessment:
    """The typed result of one protocol engine, with the case as that engine read it."""

    protocol: Protocol
    case: nl.Case  # the case the engine read (:func:`case_for_protocol`): ``case_to_json(case)`` reproduces ``result``
    result: nl.Assessment | LungRadsAssessment

    @property
    def protocol_version(self) -> str:
        return PROTOCOL_VERSIONS[self.protocol]

    @property
    def category(self) -> str:
        """NLCSP "0".."6"; Lung-RADS "0", "1", "2", "3", "4A", "4B", "4X"."""
        return self.result.category

    @property
    def label(self) -> str:
        """As reported: NLCSP "4A" = Category 4 with the A flag; Lung-RADS "4AS" = 4A with the S modifier."""
        if isinstance(self.result, LungRadsAssessment):
            return self.result.label
        return self.result.category + ("A" if self.result.additional_findings else "")

    @property
    def assessment_json(self) -> dict[str, Any]:
        """The ``noduled.assessment/1`` document (the edge: the stored assessment)."""
        if isinstance(self.result, LungRadsAssessment):
            from lungrads.cases import assessment_to_json as lung_rads_json

            return lung_rads_json(self.result)
        from nlcsp.cases import assessment_to_json

        return assessment_to_json(self.result)


def case_for_protocol(case: nl.Case, protocol: str) -> nl.Case:
    """The case as ``protocol`` reads it: for Lung-RADS the priors' recorded categories move to
    ``lung_rads_category``; a category the protocol does not have is dropped."""
    valid = _CATEGORIES.get(protocol, frozenset())
    lung_rads = protocol == "lung-rads-2022"

    def prior(p: nl.Prior) -> nl.Prior:
        recorded = p.lung_rads_category if lung_rads and p.lung_rads_category is not None else p.category
        # a recorded category of the other protocol (the site switched: "5" is no Lung-RADS category, "4A" no
        # NLCSP one) is dropped -- the engine derives that time point's category; "0".."3" cannot be told apart
        category = recorded if recorded in valid else None
        if lung_rads:
            return replace(p, category=None, lung_rads_category=category)
        return replace(p, category=category, lung_rads_category=None)

    return replace(case, nodules=tuple(replace(n, priors=tuple(prior(p) for p in n.priors)) for n in case.nodules))


def assess_case(case: nl.Case, protocol: str) -> ProtocolAssessment:
    """The typed assessment of ``case`` by ``protocol`` (``nlcsp`` or ``lung-rads-2022``)."""
    from nlcsp.cases import CaseError

    if protocol not in PROTOCOLS:
        raise ProtocolError(f"protocol must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
    view = case_for_protocol(case, protocol)
    try:
        if protocol == "nlcsp":
            from nlcsp.categorize import assess

            return ProtocolAssessment("nlcsp", view, assess(view))
        from lungrads.categorize import assess as lung_rads_assess

        return ProtocolAssessment("lung-rads-2022", view, lung_rads_assess(view))
    except CaseError as exc:
        raise ProtocolError(str(exc)) from None


def audit_case(case: nl.Case, protocol: str) -> tuple[ProtocolAssessment | None, str | None]:
    """The audit protocol's assessment, or the reason it could not be made (an audit never fails an analysis).
    The case's prior categories belong to the site's protocol, so the audit derives its own (dropped here)."""
    stripped = replace(
        case,
        nodules=tuple(
            replace(n, priors=tuple(replace(p, category=None, lung_rads_category=None) for p in n.priors))
            for n in case.nodules
        ),
    )
    try:
        return assess_case(stripped, protocol), None
    except ProtocolError as exc:
        return None, f"audit protocol {protocol}: {exc}"


def exam_assessment(
    assessed: ProtocolAssessment,
    findings: Sequence[NoduleFinding],
    *,
    study_uid: str,
    series_uid: str,
    participant: Participant,
    comparison: ComparisonResult | None = None,
) -> ExamAssessment:
    """Stage 5 output (the engine's typed assessment) joined with the findings: the report's content."""
    assessment = assessed.result
    by_id: dict[str, nl.NoduleAssessment | NoduleResult] = {n.id: n for n in assessment.nodules}
    uid_of = {f.tracking_id: f.tracking_uid for f in findings}
    valid = _CATEGORIES[assessed.protocol]
    out = []
    for f in findings:
        n = by_id.get(f.tracking_id)
        if n is None:
            out.append(f)
            continue
        observations = comparison.history.get(f.tracking_id, []) if comparison is not None else []
        out.append(
            replace(
                f,
                status=n.status,
                pancan_risk_pct=n.pancan_risk_pct if isinstance(n, nl.NoduleAssessment) else None,
                category=n.category,
                rule=n.rule,
                # a prior category of another protocol (the site switched) is not this protocol's: not reported
                comparisons=tuple(
                    c if c.prior_category is None or c.prior_category in valid else replace(c, prior_category=None)
                    for c in prior_comparisons(f, observations, assessment.exam_date, n)
                ),
            )
        )
    additional = assessment.s_modifier if isinstance(assessment, LungRadsAssessment) else assessment.additional_findings
    return ExamAssessment(
        study_uid=study_uid,
        exam_date=assessment.exam_date,
        screening_round=assessment.screening_round,
        category=assessment.category,
        additional_findings=additional,
        descriptor=assessment.descriptor,
        management=assessment.management,
        follow_up_months=assessment.follow_up_months,
        due_date=assessment.due_date,
        decisive_tracking_uid=uid_of.get(assessment.decisive_nodule_id or ""),
        findings=tuple(out),
        participant=participant,
        series_uid=series_uid,
        reasons=(assessment.rule,),
        notes=tuple(assessment.notes) + tuple(comparison.notes if comparison is not None else ()),
        protocol=assessed.protocol,
        protocol_version=assessed.protocol_version,
    )


def study_date(ct: Dataset) -> dt.date:
    date = da_to_date(ct.get("StudyDate"))
    if date is None:
        text = str(ct.get("StudyDate") or "")
        raise AnalysisError(
            f"study {ct.get('StudyInstanceUID')} has no valid StudyDate ({text!r}); the follow-up due date needs it"
        )
    return date
