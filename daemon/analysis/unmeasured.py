"""Seeds that find nothing (pure): a nodule the reader marked and noduled could not measure.

The reader marked something; a report must never say it is not there.  The rule
(``nlcsp/INTERPRETATION.md``, "Nodules the reader marked and noduled could not measure"):

- the finding stays in the report, at the reader's position, as "marked by the reader, not
  measurable: <reason>";
- with the reader's own length or diameter on the seed, the protocol engine gets the nodule with
  that mean diameter (note 5b, :func:`daemon.analysis.protocol.build_case`): it is categorised;
- without one, the nodule cannot be categorised: the exam category covers the other nodules only,
  the report is marked incomplete (SR Completion Flag PARTIAL, a note naming the nodules), and an
  exam with nothing else to categorise is "not categorised" -- never Category 1 "No lung nodules".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from dicom_sr.findings import ExamAssessment, NoduleFinding

PREFIX = "marked by the reader, not measurable: "
NOT_CATEGORISED = "Not categorised: the nodules the reader marked could not be measured"
MANAGEMENT = "Radiologist to measure the marked nodules (mean diameter, note 5b) and categorise the exam"


def mark_unmeasured(findings: Sequence[NoduleFinding]) -> list[NoduleFinding]:
    """Every finding without a measurement says it was marked by the reader and why it is not measured."""
    out = []
    for f in findings:
        if f.measurement is None and not (f.error or "").startswith(PREFIX):
            f = replace(f, error=PREFIX + (f.error or "no nodule found at the mark"))
        out.append(f)
    return out


def uncategorised(findings: Sequence[NoduleFinding]) -> list[NoduleFinding]:
    """The findings the protocol engine could not get: no measurement and no reader's length."""
    return [f for f in findings if f.measurement is None and (f.seed is None or f.seed.reader_diameter_mm is None)]


def complete_or_partial(
    assessment: ExamAssessment, findings: Sequence[NoduleFinding], *, nodules_in_case: int
) -> ExamAssessment:
    """The assessment, marked incomplete when a marked nodule could not be measured nor categorised."""
    lacking = uncategorised(findings)
    if not lacking:
        return assessment
    names = ", ".join(f.tracking_id or "a mark" for f in lacking)
    note = (
        f"incomplete: {len(lacking)} nodule(s) marked by the reader could not be measured ({names}); "
        + ("the exam is not categorised" if nodules_in_case == 0 else "the category covers the other nodules only")
        + "; measure them (mean diameter, note 5b) and categorise"
    )
    assessment = replace(assessment, incomplete=True, notes=(*assessment.notes, note))
    if nodules_in_case == 0 and assessment.category == "1":
        # the engine saw no nodule and said "No lung nodules": not what the reader's marks say
        assessment = replace(
            assessment,
            category="",
            descriptor=NOT_CATEGORISED,
            management=MANAGEMENT,
            follow_up_months=None,
            due_date=None,
            decisive_tracking_uid=None,
        )
    return assessment
