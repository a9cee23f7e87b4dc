"""Reading reports back: ExamAssessment -> SR -> read_report gives the same findings
(at the SR's presentation precision: volume whole mm³, lengths 0.1 mm, HU whole,
percent change 0.1 %, VDT whole days, PanCan 0.01 %), and third-party TID 1500
groups come back as measurements."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dicom_sr.labels import parse_labels
from dicom_sr.read_report import ReportError, read_report
from dicom_sr.report import build_report
from dicom_sr.seg import build_segmentation
from tests.dicom_sr_support import make_assessment, make_ct_series, write

THIRD = Path("/work/shared/realdata/third-party-objects")


def _close(a, b, tol):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), atol=tol)


def _check_measurement(got, want):
    assert got.volume_mm3 == round(want.volume_mm3)
    for name in ("mean_diameter_mm", "long_axis_mm", "short_axis_mm", "max_axial_diameter_mm"):
        assert getattr(got, name) == round(getattr(want, name), 1), name
    assert got.mean_hu == round(want.mean_hu)
    assert got.solid_volume_mm3 == (None if want.solid_volume_mm3 is None else round(want.solid_volume_mm3))
    assert got.solid_mean_diameter_mm == (
        None if want.solid_mean_diameter_mm is None else round(want.solid_mean_diameter_mm, 1)
    )
    assert got.measurement_plane == want.measurement_plane
    assert got.mask is None


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    ct = make_ct_series(seed="roundtrip")
    assessment = make_assessment(ct)
    seg = build_segmentation(assessment.findings, ct)
    path = write(build_report(assessment, ct, seg=seg), tmp_path_factory.mktemp("rr") / "sr.dcm")
    return assessment, read_report(path)


def test_exam_level_round_trip(round_trip):
    want, contents = round_trip
    got = contents.assessment
    assert contents.is_noduled
    for name in (
        "study_uid",
        "exam_date",
        "screening_round",
        "category",
        "additional_findings",
        "descriptor",
        "management",
        "follow_up_months",
        "due_date",
        "decisive_tracking_uid",
        "series_uid",
        "reasons",
        "notes",
    ):
        assert getattr(got, name) == getattr(want, name), name
    assert replace(got.participant, sources={}) == replace(want.participant, sources={})


def test_findings_round_trip(round_trip):
    want, contents = round_trip
    got = contents.findings
    assert [f.tracking_uid for f in got] == [f.tracking_uid for f in want.findings]
    for g, w in zip(got, want.findings):
        assert (g.tracking_id, g.status, g.category, g.rule, g.error) == (
            w.tracking_id,
            w.status,
            w.category,
            w.rule,
            w.error,
        )
        assert g.pancan_risk_pct == round(w.pancan_risk_pct, 2)
        _check_measurement(g.measurement, w.measurement)
        m, wm = g.measurement, w.measurement
        assert _close(m.long_axis_endpoints_lps_mm, wm.long_axis_endpoints_lps_mm, 1e-3)
        assert _close(m.short_axis_endpoints_lps_mm, wm.short_axis_endpoints_lps_mm, 1e-3)
        assert _close(m.centroid_lps_mm, wm.centroid_lps_mm, 1e-3)
        assert m.quality == wm.quality
        for name in w.characterization.__dataclass_fields__:
            gc, wc = getattr(g.characterization, name), getattr(w.characterization, name)
            if name == "pleural_distance_mm" and wc is not None:
                assert (gc.value, gc.origin, gc.confidence) == (round(wc.value, 1), wc.origin, wc.confidence)
            else:
                assert gc == wc, name
        if w.seed is None:
            assert g.seed is None
        else:
            assert _close(g.seed.position_lps_mm, w.seed.position_lps_mm, 1e-3)
            assert replace(g.seed, position_lps_mm=w.seed.position_lps_mm) == w.seed
            assert g.seed.attributes == parse_labels(w.seed.label)


def test_prior_comparisons_round_trip(round_trip):
    want, contents = round_trip
    got = contents.findings[0].comparisons
    assert len(got) == len(want.findings[0].comparisons) == 2
    for g, w in zip(got, want.findings[0].comparisons):
        assert (
            g.prior_study_uid,
            g.prior_study_date,
            g.days_between,
            g.growth_status,
            g.prior_category,
            g.prior_category_derived,
            g.is_comparison_study,
        ) == (
            w.prior_study_uid,
            w.prior_study_date,
            w.days_between,
            w.growth_status,
            w.prior_category,
            w.prior_category_derived,
            w.is_comparison_study,
        )
        for name, digits in (("volume_change_pct", 1), ("vdt_days", 0), ("diameter_change_mm", 1)):
            wv = getattr(w, name)
            assert getattr(g, name) == (None if wv is None else round(wv, digits)), name
        if w.prior_measurement is None:
            assert g.prior_measurement is None
        else:
            _check_measurement(g.prior_measurement, w.prior_measurement)
    # the comparison study is identifiable for the next round (issue 8)
    comparison = [c for c in got if c.is_comparison_study]
    assert [c.prior_study_uid for c in comparison] == ["1.2.826.0.1.3680043.8.498.1001"]


def test_third_party_groups_are_prior_measurements():
    if not THIRD.is_dir():
        pytest.skip("shared real-data folder is not mounted")
    hd_report = read_report(THIRD / "highdicom-tid1500-multiple-groups.dcm")
    assert not hd_report.is_noduled and hd_report.assessment is None
    by_id = {g.tracking_id: g for g in hd_report.groups}
    assert by_id["LungNodule0001"].diameter_mm == 10.0 and by_id["LungNodule0001"].finding == "Nodule"
    assert by_id["Vertebra0001"].volume_mm3 == 200.0
    assert by_id["LungNodule0001"].tracking_uid == "1.2.826.0.1.3680043.10.511.3.11998155355995483197548907108234588"
    cornerstone = read_report(THIRD / "dcmjs-cornerstone-tid1500.dcm")
    bidi = next(g for g in cornerstone.groups if g.tracking_id.endswith("Bidirectional"))
    assert (bidi.long_axis_mm, bidi.short_axis_mm) == (93.9, 47.0)
    # lengths in pixels ("1" units) are not millimetres: not reported as such
    sample = read_report(THIRD / "dcmjs-sample-sr.dcm")
    assert sample.groups[0].long_axis_mm is None
    assert [m[2] for m in sample.groups[0].measurements] == ["1", "1"]


def test_not_a_measurement_report():
    ct = make_ct_series(n_slices=1, seed="nr")
    with pytest.raises(ReportError, match="not a structured report"):
        read_report(ct[0])


def test_every_quality_flag_round_trips(tmp_path):
    """Each measurement-quality flag (e.g. 'too small for volumetry') is coded in the SR and read back."""
    from segmentation.types import MeasurementQuality

    ct = make_ct_series(seed="quality")
    assessment = make_assessment(ct, with_prior=False)
    names = [n for n in MeasurementQuality.__dataclass_fields__ if n != "reasons"]
    quality = MeasurementQuality(**{n: True for n in names}, reasons=("under about 4 mm thick", "may leak"))
    first = assessment.findings[0]
    assessment = replace(
        assessment,
        findings=(replace(first, measurement=replace(first.measurement, quality=quality)), *assessment.findings[1:]),
    )
    seg = build_segmentation(assessment.findings, ct)
    got = read_report(write(build_report(assessment, ct, seg=seg), tmp_path / "sr.dcm")).findings[0]
    assert got.measurement.quality == quality


def test_volume_convention_round_trips_and_an_earlier_sr_reads_as_partial_volume(tmp_path):
    """The volume NUM names its boundary convention (TID 4019 Algorithm Parameters); an SR of a version
    before the switch to the radiologists' outline names none and reads as partial-volume, so a later round
    does not take the blurred-edge shell between the two for growth."""
    from segmentation.types import PARTIAL_VOLUME, RADIOLOGISTS_OUTLINE

    ct = make_ct_series(seed="convention")
    assessment = make_assessment(ct)
    first = assessment.findings[0]
    outlined = replace(first.measurement, volume_convention=RADIOLOGISTS_OUTLINE)
    assessment = replace(assessment, findings=(replace(first, measurement=outlined), *assessment.findings[1:]))
    seg = build_segmentation(assessment.findings, ct)
    sr = build_report(assessment, ct, seg=seg)
    got = read_report(write(sr, tmp_path / "sr.dcm")).findings[0]
    assert got.measurement.volume_convention == RADIOLOGISTS_OUTLINE
    measured = [c.prior_measurement for c in got.comparisons if c.prior_measurement is not None]
    assert measured and all(p.volume_convention == RADIOLOGISTS_OUTLINE for p in measured)
    # the same SR with the parameter taken out, as an earlier version wrote it
    from pydicom.sequence import Sequence as DcmSequence

    from dicom_sr import tree

    removed = 0
    for item in tree.walk(sr):
        kids = item.get("ContentSequence")
        if kids:
            keep = [x for x in kids if not tree.text(x).startswith("volume convention: ")]
            removed += len(kids) - len(keep)
            item.ContentSequence = DcmSequence(keep)
    assert removed >= 1
    old = read_report(write(sr, tmp_path / "old.dcm")).findings[0]
    assert old.measurement.volume_convention == PARTIAL_VOLUME
    assert old.measurement.volume_mm3 == got.measurement.volume_mm3
