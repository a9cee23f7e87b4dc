"""The Encapsulated PDF of the NLCSP report: valid DICOM, the report's words in the PDF."""

from __future__ import annotations

from dicom_sr.key_images import NOT_FOR_DIAGNOSIS
from dicom_sr.pdf_report import ENCAPSULATED_PDF_STORAGE, build_pdf_report
from tests.dicom_sr_support import (
    dciodvfy_errors,
    make_assessment,
    make_ct_series,
    write,
)


def test_pdf_report_is_valid_and_says_what_the_report_says(tmp_path):
    ct = make_ct_series(seed="pdf")
    assessment = make_assessment(ct)
    ds = build_pdf_report(assessment, ct[0])
    assert dciodvfy_errors(write(ds, tmp_path / "pdf.dcm")) == []
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE and ds.Modality == "DOC"
    assert ds.StudyInstanceUID == ct[0].StudyInstanceUID and ds.PatientID == ct[0].PatientID
    pdf = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    for text in (
        f"Exam category: NLCSP Category {assessment.category}",
        f"Management: {assessment.management}",
        f"Due date: {assessment.due_date.isoformat()}",
        NOT_FOR_DIAGNOSIS,
    ):
        assert text.encode() in pdf, text
    for f in assessment.findings:
        assert f"({f.tracking_id} ".encode() in pdf  # a table row per nodule
    assert build_pdf_report(assessment, ct[0]).SOPInstanceUID == ds.SOPInstanceUID  # deterministic
