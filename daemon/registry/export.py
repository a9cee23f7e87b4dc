"""The exports (pure: records in, text out): LCSR-style exam file, CSV (exams, nodules), FHIR R4 Bundle.

**LCSR** (the ACR Lung Cancer Screening Registry's exam data file conventions): one record per line,
records end in CR LF, elements separated by ``|``, an empty element is nothing between the bars, and
no value contains ``|`` (or a line break): such characters are replaced by ``/`` (a space for line
breaks) and counted in the side report.  The first line is the header row of element names (the
registry's upload accepts and skips it).  The element names follow the LCSR data dictionary where it
names them (``CT_Exam_Result_Lung_RADS``, ``Lung_RADS_Version``); the node's own fields the LCSR has no
element for (the NLCSP category for the NCSR) are at the end.  What noduled cannot know is left empty
and listed, element by element with the reason, in the side report (:func:`lcsr_side_report`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.registry.records import ExportExam

LCSR_VERSION = "noduled-lcsr/1"
YES_NO = {1: "Y", 0: "N"}  # True / False hash as 1 / 0


def _fmt(value: Any, digits: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, dt.date):
        return value.strftime("%m/%d/%Y")  # the LCSR's date format
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits is not None else f"{value:g}"
    return str(value)


def _yn(value: int | bool | None) -> str:
    return "" if value is None else YES_NO[value]


def _smoking(value: str | None) -> str:
    return {
        "current": "Current smoker",
        "former": "Former smoker",
        "never": "Never smoker",
        "unknown": "Unknown if ever smoked",
    }.get(value or "", "")


@dataclass(frozen=True)
class Element:
    name: str
    value: Callable[[ExportExam, bool], str]
    unknown_reason: str  # why it is empty when it is
    identifying: bool = False  # exported with --identified only


def _e(name: str, fn: Callable[[ExportExam], Any], reason: str, *, identifying: bool = False) -> Element:
    return Element(name, lambda x, _identified: fn(x), reason, identifying)


NOT_RECORDED = "not in the participant file or the DICOM headers"
LCSR_ELEMENTS: tuple[Element, ...] = (
    _e("Facility_ID", lambda x: x.facility_id, "[registry] facility_id is not configured"),
    Element("Patient_ID", lambda x, ident: (x.patient_id or "") if ident else x.participant_key, "no Patient ID"),
    _e("Patient_ID_Issuer", lambda x: x.issuer, "pseudonymised export (use --identified)", identifying=True),
    _e(
        "Patient_Last_Name",
        lambda x: (x.patient_name or "").split("^")[0],
        "pseudonymised export (use --identified)",
        identifying=True,
    ),
    _e(
        "Patient_First_Name",
        lambda x: ((x.patient_name or "").split("^") + [""])[1],
        "pseudonymised export (use --identified)",
        identifying=True,
    ),
    _e("Patient_DOB", lambda x: _fmt(x.birth_date), "pseudonymised export (use --identified)", identifying=True),
    _e("Patient_Age", lambda x: _fmt(x.age_years), "no birth date or Patient's Age"),
    _e("Patient_Sex", lambda x: x.sex, NOT_RECORDED),
    _e("Exam_Unique_ID", lambda x: x.accession_number, "pseudonymised export (use --identified)", identifying=True),
    _e("Exam_Date", lambda x: _fmt(x.exam_date), "no study date"),
    _e("Indication_For_Exam", lambda x: x.indication, "unknown"),
    _e("Smoking_Status", lambda x: _smoking(x.smoking_status), NOT_RECORDED),
    _e("Number_Of_Pack_Years", lambda x: _fmt(x.pack_years), NOT_RECORDED),
    _e("Years_Since_Quit", lambda x: _fmt(x.years_since_quit), "not a former smoker, or not recorded"),
    _e("Shared_Decision_Making", lambda x: _yn(x.shared_decision_making), NOT_RECORDED),
    _e("Smoking_Cessation_Guidance", lambda x: _yn(x.cessation_counselling), NOT_RECORDED),
    _e("Family_History_Lung_Cancer", lambda x: _yn(x.family_history_lung_cancer), NOT_RECORDED),
    _e("Emphysema", lambda x: _yn(x.emphysema), NOT_RECORDED),
    _e("Patient_Height_m", lambda x: _fmt(x.height_m, 2), NOT_RECORDED),
    _e("Patient_Weight_kg", lambda x: _fmt(x.weight_kg, 1), NOT_RECORDED),
    _e(
        "Eligibility_Criteria_Met",
        lambda x: _yn(x.eligible),
        "a criterion (age, pack-years, years since quit, symptoms) is unknown",
    ),
    _e("CT_Scanner_Manufacturer", lambda x: x.scanner_manufacturer, "not in the CT headers"),
    _e("CT_Scanner_Model", lambda x: x.scanner_model, "not in the CT headers"),
    _e("Tube_Voltage_kVp", lambda x: _fmt(x.kvp), "not in the CT headers or dose SR"),
    _e("Tube_Current_Time_mAs", lambda x: _fmt(x.exposure_mas), "not in the CT headers or dose SR"),
    _e("Pitch", lambda x: _fmt(x.pitch_factor), "not in the CT headers or dose SR"),
    _e("Reconstructed_Slice_Width_mm", lambda x: _fmt(x.slice_width_mm), "not in the CT headers"),
    _e("Scan_Length_mm", lambda x: _fmt(x.scan_length_mm, 1), "no dose SR and no image positions"),
    _e("CTDIvol_mGy", lambda x: _fmt(x.ctdivol_mgy, 2), "no dose SR and no CTDIvol (0018,9345) in the images"),
    _e("DLP_mGy_cm", lambda x: _fmt(x.dlp_total_mgycm, 2), "no CT Radiation Dose SR received with the study"),
    _e("Prior_Exam_Date", lambda x: _fmt(x.prior_exam_date), "no prior exam"),
    _e("Comparison_To_Prior", lambda x: _yn(x.comparison_made), "unknown"),
    # from a Lung-RADS assessment: the reported one, or the audit protocol's computed alongside ([analysis] audit_protocol)
    _e(
        "CT_Exam_Result_Lung_RADS",
        lambda x: x.lung_rads_category or "",
        "no Lung-RADS assessment of the exam (reported with NLCSP, no Lung-RADS audit protocol; see NLCSP_Category)",
    ),
    _e("Lung_RADS_Version", lambda x: "2022" if x.lung_rads_category else "", "no Lung-RADS assessment of the exam"),
    _e(
        "CT_Exam_Result_Modifier_S",
        lambda x: _yn(x.additional_findings) if x.protocol == "lung-rads-2022" else "",
        "reported with NLCSP: noduled records the S modifier of a reported Lung-RADS assessment only (NLCSP A: Other_Findings_A)",
    ),
    _e(
        "Other_Findings_A",
        lambda x: _yn(x.additional_findings) if x.protocol == "nlcsp" else "",
        "reported with Lung-RADS: the S modifier is CT_Exam_Result_Modifier_S",
    ),
    _e(
        "NLCSP_Category",
        lambda x: x.nlcsp_category or "",
        "no NLCSP assessment of the exam (reported with Lung-RADS, no NLCSP audit)",
    ),
    _e("Recommended_Interval_Months", lambda x: _fmt(x.follow_up_months), "no interval recommended (e.g. referral)"),
    _e("Follow_Up_Due_Date", lambda x: _fmt(x.due_date), "no interval recommended (e.g. referral)"),
)


def _clean(text: str, counter: Counter[str], name: str) -> str:
    if "|" in text or "\r" in text or "\n" in text:
        counter[name] += 1
        text = text.replace("|", "/").replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return text


@dataclass
class LCSRFile:
    text: str  # the file, CR LF line ends
    records: int
    empty: Counter[str] = field(default_factory=Counter)  # element -> records with it empty
    replaced: Counter[str] = field(default_factory=Counter)  # element -> values with | or line breaks replaced


def lcsr_file(exams: Sequence[ExportExam], *, identified: bool = False) -> LCSRFile:
    """The LCSR exam file of ``exams`` (header row + one record per exam)."""
    empty: Counter[str] = Counter()
    replaced: Counter[str] = Counter()
    lines = ["|".join(e.name for e in LCSR_ELEMENTS)]
    for x in exams:
        cells = []
        for el in LCSR_ELEMENTS:
            value = "" if el.identifying and not identified else _clean(el.value(x, identified), replaced, el.name)
            if value == "":
                empty[el.name] += 1
            cells.append(value)
        lines.append("|".join(cells))
    return LCSRFile("".join(line + "\r\n" for line in lines), len(exams), empty, replaced)


def lcsr_side_report(f: LCSRFile, *, identified: bool, excluded_opted_out: int) -> str:
    """What the LCSR file leaves empty, element by element, and why."""
    out = [
        f"LCSR-style exam file ({LCSR_VERSION}): {f.records} records, {len(LCSR_ELEMENTS)} elements per record",
        "pseudonymised: Patient_ID is the keyed participant key"
        if not identified
        else "identified export (--identified)",
        f"participants who opted out: {excluded_opted_out} exams not exported",
        "",
        "Elements left empty (noduled cannot know them, or they are not recorded):",
    ]
    for el in LCSR_ELEMENTS:
        if f.empty.get(el.name):
            reason = (
                "pseudonymised export (use --identified)" if el.identifying and not identified else el.unknown_reason
            )
            out.append(f"  {el.name}: empty in {f.empty[el.name]} of {f.records} records -- {reason}")
    if f.replaced:
        out.append("")
        out.append("Values in which '|' or line breaks were replaced:")
        out.extend(f"  {name}: {count}" for name, count in sorted(f.replaced.items()))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ CSV
EXAM_COLUMNS = (
    "participant_key",
    "study_uid",
    "exam_date",
    "facility_id",
    "indication",
    "sex",
    "age_years",
    "smoking_status",
    "pack_years",
    "years_since_quit",
    "family_history_lung_cancer",
    "emphysema",
    "eligible",
    "scanner_manufacturer",
    "scanner_model",
    "kvp",
    "exposure_mas",
    "pitch_factor",
    "slice_width_mm",
    "scan_length_mm",
    "ctdivol_mgy",
    "dlp_total_mgycm",
    "dose_source",
    "prior_exam_date",
    "comparison_made",
    "protocol",
    "protocol_version",
    "category",
    "additional_findings",
    "follow_up_months",
    "due_date",
    "radiologist",
    "lung_rads_category",
    "nlcsp_category",
)
IDENTIFYING_COLUMNS = ("patient_id", "issuer", "patient_name", "birth_date", "accession_number")
NODULE_COLUMNS = (
    "participant_key",
    "study_uid",
    "exam_date",
    "tracking_id",
    "tracking_uid",
    "volume_mm3",
    "mean_diameter_mm",
    "composition",
    "status",
    "category",
    "error",
)


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else value


def csv_files(exams: Sequence[ExportExam], *, identified: bool = False) -> tuple[str, str]:
    """(exams.csv, nodules.csv): one row per exam, one row per nodule."""
    cols = EXAM_COLUMNS + (IDENTIFYING_COLUMNS if identified else ())
    a, b = io.StringIO(), io.StringIO()
    wa, wb = csv.writer(a, lineterminator="\n"), csv.writer(b, lineterminator="\n")
    wa.writerow(cols)
    wb.writerow(NODULE_COLUMNS)
    for x in exams:
        wa.writerow([_csv_value(getattr(x, c)) for c in cols])
        for n in x.nodules:
            wb.writerow(
                [
                    _csv_value(v)
                    for v in (
                        x.participant_key,
                        x.study_uid,
                        x.exam_date,
                        n.tracking_id,
                        n.tracking_uid,
                        n.volume_mm3,
                        n.mean_diameter_mm,
                        n.composition,
                        n.status,
                        n.category,
                        n.error,
                    )
                ]
            )
    return a.getvalue(), b.getvalue()


# ------------------------------------------------------------------ FHIR R4
DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(value, 3), "unit": unit, "system": UCUM, "code": unit}


def fhir_bundle(
    exams: Sequence[ExportExam], *, identified: bool = False, system: str = "urn:noduled:participant"
) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle: per exam an ImagingStudy, an Observation per nodule and for CTDIvol
    and DLP, and a DiagnosticReport with the category; one Patient per participant (pseudonymous unless
    ``identified``)."""
    entries: list[dict[str, Any]] = []
    patients: set[str] = set()
    for x in exams:
        pid = f"patient-{x.participant_key}"
        if x.participant_key not in patients:
            patients.add(x.participant_key)
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": pid,
                "identifier": [{"system": system, "value": x.participant_key}],
            }
            if identified and x.patient_id:
                patient["identifier"].append({"system": f"urn:dicom:issuer:{x.issuer or ''}", "value": x.patient_id})
                if x.patient_name:
                    parts = x.patient_name.split("^")
                    patient["name"] = [{"family": parts[0], "given": [p for p in parts[1:2] if p]}]
                if x.birth_date:
                    patient["birthDate"] = x.birth_date.isoformat()
            if x.sex in ("F", "M"):
                patient["gender"] = {"F": "female", "M": "male"}[x.sex]
            entries.append({"fullUrl": f"urn:uuid:{pid}", "resource": patient})
        subject = {"reference": f"urn:uuid:{pid}"}
        sid = f"study-{x.exam_id}"
        study = {
            "resourceType": "ImagingStudy",
            "id": sid,
            "status": "available",
            "subject": subject,
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{x.study_uid}"}],
            "started": x.exam_date.isoformat(),
            "modality": [{"system": DCM, "code": "CT"}],
        }
        entries.append({"fullUrl": f"urn:uuid:{sid}", "resource": study})
        results = []
        for code, name, value, unit in (
            ("113830", "Mean CTDIvol", x.ctdivol_mgy, "mGy"),
            ("113813", "CT Dose Length Product Total", x.dlp_total_mgycm, "mGy.cm"),
        ):
            if value is None:
                continue
            oid = f"obs-{x.exam_id}-{code}"
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{oid}",
                    "resource": {
                        "resourceType": "Observation",
                        "id": oid,
                        "status": "final",
                        "subject": subject,
                        "code": {"coding": [{"system": DCM, "code": code, "display": name}]},
                        "effectiveDateTime": x.exam_date.isoformat(),
                        "partOf": [{"reference": f"urn:uuid:{sid}"}],
                        "valueQuantity": _quantity(value, unit),
                    },
                }
            )
            results.append({"reference": f"urn:uuid:{oid}"})
        scale = "NLCSP" if x.protocol == "nlcsp" else "Lung-RADS"
        for i, n in enumerate(x.nodules):
            oid = f"obs-{x.exam_id}-nodule-{i + 1}"
            components = [
                {"code": {"coding": [{"system": SCT, "code": code, "display": disp}]}, "valueQuantity": _quantity(v, u)}
                for code, disp, v, u in (
                    ("118565006", "Volume", n.volume_mm3, "mm3"),
                    ("81827009", "Diameter", n.mean_diameter_mm, "mm"),
                )
                if v is not None
            ]
            resource: dict[str, Any] = {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "subject": subject,
                "code": {"coding": [{"system": SCT, "code": "27925004", "display": "Nodule"}], "text": n.tracking_id},
                "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{n.tracking_uid}"}],
                "effectiveDateTime": x.exam_date.isoformat(),
                "partOf": [{"reference": f"urn:uuid:{sid}"}],
                "component": components,
            }
            if n.category is not None:
                resource["interpretation"] = [{"text": f"{scale} category {n.category}"}]
            entries.append({"fullUrl": f"urn:uuid:{oid}", "resource": resource})
            results.append({"reference": f"urn:uuid:{oid}"})
        rid = f"report-{x.exam_id}"
        flag = ("A" if x.protocol == "nlcsp" else "S") if x.additional_findings else ""
        conclusion = f"{scale} category {x.category}{flag}"
        if x.follow_up_months is not None:
            conclusion += f"; next scan in {x.follow_up_months} months"
        entries.append(
            {
                "fullUrl": f"urn:uuid:{rid}",
                "resource": {
                    "resourceType": "DiagnosticReport",
                    "id": rid,
                    "status": "final",
                    "subject": subject,
                    "code": {"text": "Low-dose CT lung cancer screening: nodule assessment (noduled)"},
                    "effectiveDateTime": x.exam_date.isoformat(),
                    "imagingStudy": [{"reference": f"urn:uuid:{sid}"}],
                    "result": results,
                    "conclusion": conclusion,
                },
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def fhir_json(exams: Sequence[ExportExam], *, identified: bool = False) -> str:
    return json.dumps(fhir_bundle(exams, identified=identified), indent=1) + "\n"
