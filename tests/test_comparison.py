"""daemon.analysis.comparison in the analysis chain: a follow-up round on the 'growth' phantom pair.

Baseline and 12-month follow-up with a known shift, rotation and breathing
deformation: every nodule must be found on the prior, keep its tracking UID
from the baseline report, and get the percent change and growth status that
truth.json states; the new nodule is new and the resolved one is reported.
"""

from __future__ import annotations

import pytest
from pydicom import dcmread

from daemon.analysis.chain import AnalysisInputs, analyze
from daemon.analysis.comparison import PriorExam, PriorNodule


@pytest.fixture(scope="module")
def growth(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_images import write_study
    from tests.support.phantoms import generated_case

    root = tmp_path_factory.mktemp("growth")
    studies = generated_case("growth", size="small", seed=0)
    written = [write_study(s, root / f"t{i}") for i, s in enumerate(studies)]
    baseline = analyze(
        AnalysisInputs(study_datasets=[dcmread(p) for p in written[0]["ct"]], seed_objects=[dcmread(written[0]["sr"])])
    )
    reported = tuple(PriorNodule.of_finding(f) for f in baseline.assessment.findings)
    prior = PriorExam(
        study_uid=studies[0].study_uid,
        exam_date=studies[0].study_date,
        ct_datasets=tuple(dcmread(p) for p in written[0]["ct"]),
        reported=reported,
    )
    follow_up = analyze(
        AnalysisInputs(
            study_datasets=[dcmread(p) for p in written[1]["ct"]],
            seed_objects=[dcmread(written[1]["sr"])],
            priors=[prior],
        )
    )
    return {"studies": studies, "baseline": baseline, "follow_up": follow_up, "prior": prior, "written": written}


def _truth_of(finding, study):  # type: ignore[no-untyped-def]
    c = finding.measurement.centroid_lps_mm
    return min(study.nodules, key=lambda n: sum((a - b) ** 2 for a, b in zip(n["centroid_lps_mm"], c)))


def test_follow_up_round_with_tracking_identity_carried_over(growth: dict) -> None:
    base, follow = growth["baseline"].assessment, growth["follow_up"].assessment
    assert base.screening_round == "baseline" and follow.screening_round == "follow-up"
    base_uid_by_truth = {_truth_of(f, growth["studies"][0])["tracking_uid"]: f.tracking_uid for f in base.findings}
    for f in follow.findings:
        truth = _truth_of(f, growth["studies"][1])
        if truth["growth"]["status"] == "new":
            assert f.tracking_uid not in base_uid_by_truth.values()
            assert f.status == "new" and not f.comparisons
        else:
            assert f.tracking_uid == base_uid_by_truth[truth["tracking_uid"]], truth["id"]


def test_percent_change_and_status_match_truth(growth: dict) -> None:
    for f in growth["follow_up"].assessment.findings:
        truth = _truth_of(f, growth["studies"][1])
        status = truth["growth"]["status"]
        if status == "new":
            continue
        (comparison,) = f.comparisons
        assert (
            comparison.is_comparison_study and comparison.days_between == truth["growth"]["priors"][0]["days_between"]
        )
        # the reported change is the one of the reported volumes (the protocol engine's growth uses the same)
        v1, v2 = comparison.prior_measurement.volume_mm3, f.measurement.volume_mm3
        assert comparison.volume_change_pct == pytest.approx(100.0 * (v2 - v1) / v1), truth["id"]
        if truth["mean_diameter_mm"] >= 5:  # the bound: 5 percentage points, on the physical volumes
            true_change = truth["growth"]["priors"][0]["volume_change_pct"]
            pv1, pv2 = comparison.prior_measurement.partial_volume_mm3, f.measurement.partial_volume_mm3
            physical_change = 100.0 * (pv2 - pv1) / pv1
            assert abs(physical_change - true_change) <= 5.0, (truth["id"], physical_change, true_change)
            # the radiologists' outline adds a blurred-edge shell of about constant thickness to both time
            # points: it damps the reported relative change, never reverses it, by less than a tenth here
            assert 0.9 * abs(true_change) - 5.0 <= abs(comparison.volume_change_pct) <= abs(true_change) + 5.0, (
                truth["id"],
                comparison.volume_change_pct,
                true_change,
            )
        assert f.status == status, (truth["id"], f.status, status)


def test_resolved_nodule_is_reported(growth: dict) -> None:
    resolved = growth["studies"][1].truth["resolved_nodules"]
    notes = " ".join(growth["follow_up"].assessment.notes)
    assert len(resolved) >= 1 and notes.count("(resolved)") == len(resolved)


def test_follow_up_report_records_the_comparison_study(growth: dict) -> None:
    from dicom_sr.read_report import read_report

    back = read_report(growth["follow_up"].report).assessment
    prior_uid = growth["studies"][0].study_uid
    compared = [c for f in back.findings for c in f.comparisons]
    assert compared and all(c.prior_study_uid == prior_uid for c in compared)
    assert any(c.is_comparison_study for c in compared)


def test_prior_never_reported_gets_a_derived_category(growth: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A prior exam noduled never assessed (only its CT): the nodules are re-measured on it and the
    previous category the protocol needs is derived, and marked so."""
    from test_images import write_study

    studies = growth["studies"]
    written = [write_study(s, tmp_path / f"t{i}") for i, s in enumerate(studies)]
    prior = PriorExam(studies[0].study_uid, studies[0].study_date, tuple(dcmread(p) for p in written[0]["ct"]))
    result = analyze(
        AnalysisInputs(
            study_datasets=[dcmread(p) for p in written[1]["ct"]],
            seed_objects=[dcmread(written[1]["sr"])],
            priors=[prior],
        )
    )
    compared = [c for f in result.assessment.findings for c in f.comparisons]
    assert compared and all(
        c.prior_category_derived and c.prior_category in {"1", "2", "3", "4", "5", "6"} for c in compared
    )
    from dicom_sr.read_report import read_report

    back = read_report(result.report).assessment
    assert all(c.prior_category_derived for f in back.findings for c in f.comparisons)  # the SR says "derived"


def test_derived_category_is_shown_on_the_time_point_it_belongs_to() -> None:
    """The engine may derive the previous category on an earlier time point than the latest prior (the latest
    being a CT between rounds, a Category 0 exam or unmeasured): the SR shows it on that time point only, and
    never shows a category reported on an earlier prior as if derived for the latest one."""
    import datetime as dt
    from types import SimpleNamespace

    from daemon.analysis.comparison import PriorObservation, prior_comparisons

    older = PriorExam("1.2.3.1", dt.date(2024, 1, 10))
    between = PriorExam("1.2.3.2", dt.date(2024, 9, 1), pre_screening=True)
    observations = [PriorObservation(older, None, None), PriorObservation(between, None, None)]
    finding = SimpleNamespace(measurement=None)
    from nlcsp.types import NoduleAssessment

    derived = NoduleAssessment(
        "Nodule 1",
        "3",
        "stable",
        "x",
        previous_category="3",
        previous_category_derived=True,
        previous_category_date=dt.date(2024, 1, 10),
        derived_prior_categories=((dt.date(2024, 1, 10), "3"),),
    )
    by_date = {c.prior_study_date: c for c in prior_comparisons(finding, observations, dt.date(2025, 1, 15), derived)}
    assert (by_date[older.exam_date].prior_category, by_date[older.exam_date].prior_category_derived) == ("3", True)
    assert (by_date[between.exam_date].prior_category, by_date[between.exam_date].prior_category_derived) == (
        None,
        False,
    )
    reported_earlier = NoduleAssessment(
        "Nodule 1", "3", "stable", "x", previous_category="3", previous_category_date=dt.date(2024, 1, 10)
    )
    out = prior_comparisons(finding, observations, dt.date(2025, 1, 15), reported_earlier)  # type: ignore[arg-type]
    assert all(c.prior_category is None and not c.prior_category_derived for c in out)


def test_every_derived_prior_category_is_shown_with_its_time_point() -> None:
    """The engine's derived category of every prior time point noduled never assessed goes on that time point."""
    import datetime as dt
    from types import SimpleNamespace

    from daemon.analysis.comparison import PriorObservation, prior_comparisons

    exams = [PriorExam("1.2.3.1", dt.date(2024, 6, 1)), PriorExam("1.2.3.2", dt.date(2025, 6, 1))]
    from nlcsp.types import NoduleAssessment

    assessed = NoduleAssessment(
        "Nodule 1",
        "2",
        "stable",
        "x",
        previous_category="2",
        previous_category_derived=True,
        previous_category_date=dt.date(2025, 6, 1),
        derived_prior_categories=((dt.date(2024, 6, 1), "4"), (dt.date(2025, 6, 1), "2")),
    )
    out = prior_comparisons(
        SimpleNamespace(measurement=None),
        [PriorObservation(e, None, None) for e in exams],  # type: ignore[arg-type]
        dt.date(2026, 6, 1),
        assessed,
    )
    assert [(c.prior_study_date.isoformat(), c.prior_category, c.prior_category_derived) for c in out] == [
        ("2024-06-01", "4", True),
        ("2025-06-01", "2", True),
    ]


def test_a_reported_prior_volume_of_the_other_convention_is_not_compared() -> None:
    """An index row or SR of a version that reported the partial-volume volume: its volume would read as
    20-35 % growth against today's radiologists'-outline volume, so only its diameter is compared."""
    import datetime as dt

    from daemon.analysis.comparison import PriorObservation
    from segmentation.types import PARTIAL_VOLUME, RADIOLOGISTS_OUTLINE

    exam = PriorExam(study_uid="1.2.3", exam_date=dt.date(2024, 1, 1))

    def reported(convention: str) -> PriorNodule:
        return PriorNodule(
            tracking_uid="1.2.3.4",
            tracking_id="Nodule 1",
            volume_mm3=120.0,
            mean_diameter_mm=6.1,
            category="2",
            centroid_lps_mm=(0.0, 0.0, 0.0),
            volume_convention=convention,
        )

    same = PriorObservation(exam, None, reported(RADIOLOGISTS_OUTLINE))
    older = PriorObservation(exam, None, reported(PARTIAL_VOLUME))
    assert same.volume_mm3 == 120.0
    assert older.volume_mm3 is None and older.mean_diameter_mm == 6.1


def test_a_prior_loaded_ahead_gives_the_same_report_without_loading_it_again(growth: dict, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The node loads and lung-masks a retrieved prior while the study is still being segmented
    (load_prior); the comparison then uses it as it is, with exactly the same result."""
    import segmentation.io
    from daemon.analysis.comparison import load_prior

    loaded = load_prior(growth["prior"])
    assert loaded.image is not None and loaded.lungs is not None and loaded == growth["prior"]
    calls: list[int] = []
    real = segmentation.io.load_series

    def counting(datasets, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(datasets))
        return real(datasets, *args, **kwargs)

    monkeypatch.setattr(segmentation.io, "load_series", counting)
    written = growth["written"]
    again = analyze(
        AnalysisInputs(
            study_datasets=[dcmread(p) for p in written[1]["ct"]],
            seed_objects=[dcmread(written[1]["sr"])],
            priors=[loaded],
        )
    )
    assert len(calls) == 1  # the current series only
    assert again.assessment_json == growth["follow_up"].assessment_json
    assert again.report.SOPInstanceUID == growth["follow_up"].report.SOPInstanceUID
