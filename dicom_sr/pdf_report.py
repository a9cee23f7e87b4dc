"""The NLCSP standardised report as an Encapsulated PDF (for workstations that show documents, not SRs).

Pure: the assessment and the CT's header in, a pydicom Dataset out.  The PDF is rendered with
matplotlib (text, so it stays searchable and sharp): exam category, management and due date,
one row per nodule (composition, volume, mean diameter, growth, category and the protocol row
that decided it), the reasons and notes, and the statement that it is derived from the images
by software and is not for diagnosis without them.  The DICOM object is the Encapsulated PDF
IOD (PS3.3 A.45.1) with the CT's patient and study, its own series (Modality DOC).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import textwrap
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_sr import codes
from dicom_sr.findings import ExamAssessment
from dicom_sr.key_images import NOT_FOR_DIAGNOSIS
from dicom_sr.seg import software_version

__all__ = ["ENCAPSULATED_PDF_STORAGE", "build_pdf_report", "render_pdf"]

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
_COPIED = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)


def _lines(assessment: ExamAssessment) -> list[tuple[str, str]]:
    """(style, text) lines of the report: 'h' heading, 't' text, 'r' table row, 'w' warning."""
    out: list[tuple[str, str]] = [
        (
            "h",
            f"Lung cancer screening ({codes.PROTOCOL_SHORT_NAMES.get(assessment.protocol, '')}) - standardised report",
        ),
        ("t", f"Exam date {assessment.exam_date.isoformat()}, {assessment.screening_round} round"),
        (
            "t",
            f"Exam category: {codes.PROTOCOL_SHORT_NAMES.get(assessment.protocol, '')} Category {assessment.category or 'not assigned (incomplete: a marked nodule could not be measured)'}{' A' if assessment.additional_findings else ''}"
            + (f" - {assessment.descriptor}" if assessment.descriptor else ""),
        ),
        ("t", f"Management: {assessment.management or '-'}"),
        ("t", f"Due date: {assessment.due_date.isoformat() if assessment.due_date else '-'}"),
        ("t", ""),
        (
            "r",
            f"{'Nodule':<10}{'composition':<13}{'volume mm3':>11}{'mean diam.':>11}{'change %':>10}{'VDT d':>8}{'cat.':>6}",
        ),
    ]
    for f in assessment.findings:
        m = f.measurement
        c = next((x for x in f.comparisons if x.is_comparison_study), None)
        comp = f.characterization.composition
        out.append(
            (
                "r",
                f"{f.tracking_id:<10}{(str(comp.value) if comp and comp.value else '-'):<13}"
                f"{(f'{m.volume_mm3:.0f}' if m else 'no nodule'):>11}"
                f"{(f'{m.mean_diameter_mm:.1f}' if m else '-'):>11}"
                f"{(f'{c.volume_change_pct:+.1f}' if c and c.volume_change_pct is not None else '-'):>10}"
                f"{(f'{c.vdt_days:.0f}' if c and c.vdt_days is not None else '-'):>8}"
                f"{(f.category or '-'):>6}",
            )
        )
    out.append(("t", ""))
    for f in assessment.findings:
        if f.rule:
            out.extend(("t", line) for line in textwrap.wrap(f"{f.tracking_id}: {f.rule}", 100))
    for text in (*assessment.reasons, *assessment.notes):
        out.extend(("t", line) for line in textwrap.wrap(text, 100))
    out.append(("t", ""))
    out.append(("w", NOT_FOR_DIAGNOSIS))
    out.append(("t", f"noduled {software_version()}; measurements are the software's, from reader-marked seeds."))
    return out


def render_pdf(assessment: ExamAssessment) -> bytes:
    """The report as PDF bytes (A4 pages, deterministic: no creation date in the metadata)."""
    lines = _lines(assessment)
    per_page = 52
    buf = io.BytesIO()
    # the 14 standard PDF fonts, uncompressed: the text is in the file as text (searchable, checkable)
    rc = {"pdf.use14corefonts": True, "pdf.compression": 0}
    meta = {"Creator": "noduled", "Producer": "noduled", "CreationDate": None}
    font_log = logging.getLogger("matplotlib.font_manager")  # "Helvetica: using medium for normal" is noise
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    try:
        _pages(lines, per_page, buf, rc, meta)
    finally:
        font_log.setLevel(level)
    return buf.getvalue()


def _pages(
    lines: list[tuple[str, str]], per_page: int, buf: io.BytesIO, rc: dict[Any, Any], meta: dict[str, Any]
) -> None:
    with matplotlib.rc_context(rc), PdfPages(buf, metadata=meta) as pdf:
        for start in range(0, len(lines), per_page):
            fig = Figure(figsize=(8.27, 11.69))
            y = 0.95
            for style, text in lines[start : start + per_page]:
                kw: dict[str, object] = {"fontsize": 13, "weight": "bold"} if style == "h" else {"fontsize": 9}
                if style == "r":
                    kw["family"] = "monospace"
                if style == "w":
                    kw.update(color="red", weight="bold")
                fig.text(0.06, y, text, va="top", **kw)  # type: ignore[arg-type]
                y -= 0.03 if style == "h" else 0.017
            pdf.savefig(fig)


def build_pdf_report(
    assessment: ExamAssessment,
    ct: Dataset,
    *,
    series_number: int = 9004,
    series_uid: str | None = None,
    content_datetime: dt.datetime | None = None,
    manufacturer: str = "noduled",
) -> Dataset:
    """An Encapsulated PDF of the report, in the study of the CT image ``ct``."""
    if str(ct.StudyInstanceUID) != assessment.study_uid:
        raise ValueError(f"assessment is of study {assessment.study_uid}, the CT of {ct.StudyInstanceUID}")
    pdf = render_pdf(assessment)
    when = content_datetime or dt.datetime.combine(assessment.exam_date, dt.time())
    ds = Dataset()
    for keyword in _COPIED:
        if keyword in ct:
            setattr(ds, keyword, ct.data_element(keyword).value)  # type: ignore[union-attr]
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
        if keyword not in ds:
            setattr(ds, keyword, "")
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = generate_uid(
        entropy_srcs=["noduled-pdf", assessment.study_uid, pdf.hex()[:4096], str(len(pdf))]
    )
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid or generate_uid(entropy_srcs=["noduled-pdf-series", assessment.study_uid])
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "noduled NLCSP report (PDF, derived, not for diagnosis)"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "noduled"
    ds.SoftwareVersions = software_version()
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "NLCSP lung cancer screening report (noduled, not for diagnosis)"
    concept = Dataset()
    concept.CodeValue = "18748-4"
    concept.CodingSchemeDesignator = "LN"
    concept.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds
