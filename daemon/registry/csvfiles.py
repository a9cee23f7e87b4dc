"""The participant file and the outcome file (CSV from a RIS / booking system): columns and validation.

Pure: :func:`parse_participants` and :func:`parse_outcomes` take the CSV text and return the parsed
rows, or raise :class:`CSVFileError` listing every problem by row and column ("row 4, column
pack_years: 'lots' is not a number").  Row numbers are the file's line numbers (the header is row 1).
Column names are case-insensitive; unknown columns are an error (a misspelt column would otherwise
be silently ignored).  An empty cell means "not given": an import never erases a stored value with it.

Participant file (one row per participant; key ``patient_id`` + ``issuer``):

==========================  =================================================================
column                      values
==========================  =================================================================
patient_id                  required; as in the DICOM Patient ID (0010,0020)
issuer                      Issuer of Patient ID (0010,0021); empty = none
sex                         F, M, O (other), U (unknown)
birth_date                  YYYY-MM-DD
smoking_status              current, former, never, unknown
pack_years                  number >= 0
years_since_quit            number >= 0 (former smokers)
family_history_lung_cancer  yes / no / unknown (first-degree relative)
emphysema                   yes / no / unknown
asymptomatic                yes / no / unknown
shared_decision_making      yes / no / unknown (documented; US)
cessation_counselling       yes / no / unknown (documented)
consent                     consented, opted-out, unknown (AU: opted-out = no results are sent)
opt_out_date                YYYY-MM-DD
height_m                    number > 0 (metres)
weight_kg                   number > 0
==========================  =================================================================

Outcome file (one row per follow-up procedure or diagnosis):

==================  =========================================================================
column              values
==================  =========================================================================
patient_id          required
issuer              as above
outcome_date        required, YYYY-MM-DD
outcome_type        required: ldct, diagnostic-ct, pet-ct, bronchoscopy, biopsy, surgery, other
study_uid           the screening exam it follows (Study Instance UID), or
accession_number    ... its accession number; empty = the participant's latest exam before the date
tissue_diagnosis    benign, invasive-lung-cancer, minimally-invasive-adenocarcinoma,
                    adenocarcinoma-in-situ, carcinoid, other-malignancy, non-diagnostic, none
histology           free text (e.g. adenocarcinoma)
stage               overall stage: 0, IA1, IA2, IA3, IB, IIA, IIB, IIIA, IIIB, IIIC, IV, IVA, IVB
tnm                 e.g. T1bN0M0
tnm_edition         7, 8, other
==================  =========================================================================
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

YES_NO = {"yes": 1, "y": 1, "true": 1, "1": 1, "no": 0, "n": 0, "false": 0, "0": 0, "unknown": None, "u": None}
SMOKING = ("current", "former", "never", "unknown")
SEXES = ("F", "M", "O", "U")
CONSENT = ("consented", "opted-out", "unknown")
OUTCOME_TYPES = ("ldct", "diagnostic-ct", "pet-ct", "bronchoscopy", "biopsy", "surgery", "other")
TISSUE_DIAGNOSES = (
    "benign",
    "invasive-lung-cancer",
    "minimally-invasive-adenocarcinoma",
    "adenocarcinoma-in-situ",
    "carcinoid",
    "other-malignancy",
    "non-diagnostic",
    "none",
)
LUNG_CANCER = frozenset(
    {"invasive-lung-cancer", "minimally-invasive-adenocarcinoma", "adenocarcinoma-in-situ", "carcinoid"}
)
STAGES = ("0", "IA1", "IA2", "IA3", "IB", "IIA", "IIB", "IIIA", "IIIB", "IIIC", "IV", "IVA", "IVB")
TNM_EDITIONS = ("7", "8", "other")


class CSVFileError(ValueError):
    """The file has problems; ``errors`` lists each as "row N, column C: ..."."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} problem(s):\n" + "\n".join(errors[:20]) + more)


@dataclass(frozen=True)
class Row:
    """One valid row: its line number, the key, and the non-empty cells parsed."""

    row: int
    patient_id: str
    issuer: str
    values: dict[str, Any]


Parser = Callable[[str], Any]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _number(low: float, *, above: bool = False) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if value != value or (value <= low if above else value < low):
            raise ValueError(f"{text!r} must be {'>' if above else '>='} {low:g}")
        return value

    return parse


def _choice(allowed: tuple[str, ...], *, upper: bool = False) -> Parser:
    def parse(text: str) -> str:
        value = text.upper() if upper else text.lower()
        if value not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _yes_no(text: str) -> int | None:
    key = text.lower()
    if key not in YES_NO:
        raise ValueError(f"{text!r} is not yes, no or unknown")
    return YES_NO[key]


def _text(max_len: int) -> Parser:
    def parse(text: str) -> str:
        if len(text) > max_len:
            raise ValueError(f"is {len(text)} characters long; at most {max_len}")
        if re.search(r"[\x00-\x1f\x7f]", text):
            raise ValueError("contains control characters")
        return text

    return parse


_ID = _text(64)

PARTICIPANT_COLUMNS: dict[str, Parser] = {
    "sex": _choice(SEXES, upper=True),
    "birth_date": _date,
    "smoking_status": _choice(SMOKING),
    "pack_years": _number(0),
    "years_since_quit": _number(0),
    "family_history_lung_cancer": _yes_no,
    "emphysema": _yes_no,
    "asymptomatic": _yes_no,
    "shared_decision_making": _yes_no,
    "cessation_counselling": _yes_no,
    "consent": _choice(CONSENT),
    "opt_out_date": _date,
    "height_m": _number(0, above=True),
    "weight_kg": _number(0, above=True),
}

OUTCOME_COLUMNS: dict[str, Parser] = {
    "outcome_date": _date,
    "outcome_type": _choice(OUTCOME_TYPES),
    "study_uid": _text(64),
    "accession_number": _text(16),
    "tissue_diagnosis": _choice(TISSUE_DIAGNOSES),
    "histology": _text(128),
    "stage": _choice(STAGES, upper=True),
    "tnm": _text(32),
    "tnm_edition": _choice(TNM_EDITIONS),
}
OUTCOME_REQUIRED = ("outcome_date", "outcome_type")


def _parse(text: str, columns: dict[str, Parser], required: tuple[str, ...]) -> list[Row]:
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CSVFileError(["row 1: the file is empty (a header row naming the columns is required)"]) from None
    names = [h.strip().lower() for h in header]
    known = {"patient_id", "issuer", *columns}
    errors = [
        f"row 1, column {n!r}: unknown column (known: {', '.join(sorted(known))})" for n in names if n not in known
    ]
    errors += [f"row 1: column {n!r} appears twice" for n in sorted({n for n in names if names.count(n) > 1})]
    errors += [f"row 1: required column {n!r} is missing" for n in ("patient_id", *required) if n not in names]
    if errors:
        raise CSVFileError(errors)
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            errors.append(f"row {line_no}: {len(cells)} cells, the header has {len(names)}")
            continue
        record = {n: c.strip() for n, c in zip(names, cells)}
        values: dict[str, Any] = {}
        for name, cell in record.items():
            if name in ("patient_id", "issuer"):
                try:
                    _ID(cell)
                except ValueError as exc:
                    errors.append(f"row {line_no}, column {name}: {exc}")
                continue
            if cell == "":
                if name in required:
                    errors.append(f"row {line_no}, column {name}: required, empty")
                continue
            try:
                values[name] = columns[name](cell)
            except ValueError as exc:
                errors.append(f"row {line_no}, column {name}: {exc}")
        if not record["patient_id"]:
            errors.append(f"row {line_no}, column patient_id: required, empty")
            continue
        key = (record["patient_id"], record.get("issuer", ""))
        rows.append(Row(line_no, key[0], key[1], values))
        if columns is PARTICIPANT_COLUMNS:
            if key in seen:
                errors.append(f"row {line_no}, column patient_id: the same participant as row {seen[key]}")
            seen[key] = line_no
    if errors:
        raise CSVFileError(errors)
    return rows


def _check_participant(row: Row) -> list[str]:
    v, out = row.values, []
    if v.get("years_since_quit") is not None and v.get("smoking_status") in ("current", "never"):
        out.append(f"row {row.row}, column years_since_quit: given for a {v['smoking_status']} smoker")
    if v.get("opt_out_date") is not None and v.get("consent") not in (None, "opted-out"):
        out.append(f"row {row.row}, column opt_out_date: given but consent is {v['consent']!r}")
    if v.get("birth_date") is not None and v["birth_date"] > dt.date.today():
        out.append(f"row {row.row}, column birth_date: {v['birth_date']} is in the future")
    return out


def parse_participants(text: str) -> list[Row]:
    """The participant file's rows (see the module docstring for the columns)."""
    rows = _parse(text, PARTICIPANT_COLUMNS, ())
    errors = [e for r in rows for e in _check_participant(r)]
    if errors:
        raise CSVFileError(errors)
    return rows


def parse_outcomes(text: str) -> list[Row]:
    """The outcome file's rows (see the module docstring for the columns)."""
    rows = _parse(text, OUTCOME_COLUMNS, OUTCOME_REQUIRED)
    errors = []
    for r in rows:
        if r.values.get("study_uid") and r.values.get("accession_number"):
            errors.append(f"row {r.row}, column accession_number: give study_uid or accession_number, not both")
        if r.values["outcome_date"] > dt.date.today():
            errors.append(f"row {r.row}, column outcome_date: {r.values['outcome_date']} is in the future")
    if errors:
        raise CSVFileError(errors)
    return rows


def eligible_nlcsp(
    age_years: int | None,
    smoking_status: str | None,
    pack_years: float | None,
    years_since_quit: float | None,
    asymptomatic: int | None,
) -> bool | None:
    """NLCSP eligibility: 50-70 years, >= 30 pack-years, current or quit < 10 years, asymptomatic.
    None when a criterion is unknown and the others do not already exclude."""
    checks: list[bool | None] = [
        None if age_years is None else 50 <= age_years <= 70,
        None if pack_years is None else pack_years >= 30,
        None
        if smoking_status in (None, "unknown")
        else (
            smoking_status == "current"
            or (smoking_status == "former" and (None if years_since_quit is None else years_since_quit < 10))
        ),
        None if asymptomatic is None else bool(asymptomatic),
    ]
    if any(c is False for c in checks):
        return False
    return None if any(c is None for c in checks) else True
