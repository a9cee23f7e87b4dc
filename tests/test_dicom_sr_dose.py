"""dicom_sr.dose reads the CT Radiation Dose SR (TID 10011) a scanner sends, and the CT image exposure."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread

from dicom_sr.dose import DoseReportError, ct_image_exposure, read_dose_report, screening_events
from test_images.cases import generate_case
from test_images.dicom_out import ct_datasets
from test_images.dose_sr import dose_events, dose_sr


@pytest.fixture(scope="module")
def study():  # type: ignore[no-untyped-def]
    return generate_case("solid-sizes", "small", 0)[0]


def _roundtrip(ds):  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return dcmread(io.BytesIO(buf.getvalue()))


def test_every_event_with_ctdivol_dlp_and_the_total(study) -> None:  # type: ignore[no-untyped-def]
    report = read_dose_report(_roundtrip(dose_sr(study, ctdivol_mgy=1.7)))
    expected = dose_events(study, ctdivol_mgy=1.7)
    assert report.kind == "ct"
    assert [e.event_uid for e in report.events] == [e.event_uid for e in expected]
    assert [e.ctdivol_mgy for e in report.events] == pytest.approx([0.08, 1.7])
    assert [e.dlp_mgycm for e in report.events] == pytest.approx([round(e.dlp_mgycm, 2) for e in expected])
    assert report.dlp_total_mgycm == pytest.approx(round(sum(e.dlp_mgycm for e in expected), 2))
    spiral = report.events[1]
    assert spiral.acquisition_type == "Spiral Acquisition" and spiral.target_region == "Chest"
    assert spiral.kvp == 120.0 and spiral.pitch_factor == 1.0 and spiral.phantom == "IEC Body Dosimetry Phantom"
    assert spiral.exposure_mas == pytest.approx(expected[1].tube_current_ma * 0.5)


def test_screening_events_are_the_spiral_without_event_uids_on_images(study) -> None:  # type: ignore[no-untyped-def]
    report = read_dose_report(dose_sr(study))
    assert [e.acquisition_type for e in screening_events(report, [])] == ["Spiral Acquisition"]
    scout = report.events[0].event_uid
    assert [e.event_uid for e in screening_events(report, [scout])] == [scout]


def test_a_wrong_unit_is_named(study) -> None:  # type: ignore[no-untyped-def]
    ds = dose_sr(study)
    acq = ds.ContentSequence[4]
    dose = acq.ContentSequence[5]
    dose.ContentSequence[0].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue = "mSv"
    with pytest.raises(DoseReportError, match="Mean CTDIvol is in 'mSv'"):
        read_dose_report(ds)


def test_a_ct_image_is_not_a_dose_report_but_has_ctdivol(study) -> None:  # type: ignore[no-untyped-def]
    image = next(ct_datasets(study))
    with pytest.raises(DoseReportError, match="is not a radiation dose SR"):
        read_dose_report(image)
    exposure = ct_image_exposure(image)
    assert exposure.ctdivol_mgy == pytest.approx(float(image.CTDIvol))
    assert exposure.kvp == 120.0 and exposure.model == str(image.ManufacturerModelName)


def test_exam_dose_prefers_the_dose_sr_and_falls_back_to_the_images(study) -> None:  # type: ignore[no-untyped-def]
    from daemon.storage.registry import dose_from_datasets

    headers = list(ct_datasets(study))[:3]
    with_sr = dose_from_datasets(study.series_uid, headers, [dose_sr(study, ctdivol_mgy=2.2)])
    assert with_sr.dose_source == "ct-dose-sr" and with_sr.ctdivol_mgy == pytest.approx(2.2)
    assert with_sr.dlp_total_mgycm == pytest.approx(
        round(sum(e.dlp_mgycm for e in dose_events(study, ctdivol_mgy=2.2)), 2)
    )
    assert [(r.source, r.screening) for r in with_sr.events] == [
        ("ct-image", True),
        ("ct-dose-sr", False),
        ("ct-dose-sr", True),
    ]
    images_only = dose_from_datasets(study.series_uid, headers, [])
    assert images_only.dose_source == "ct-image" and images_only.ctdivol_mgy == pytest.approx(float(headers[0].CTDIvol))
    assert images_only.dlp_total_mgycm is None and images_only.kvp == 120.0
