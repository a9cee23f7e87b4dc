"""daemon.analysis.series: one ranking for the series fetched, compared with, and measured on."""

from __future__ import annotations

from pydicom.dataset import Dataset

from daemon.analysis.priors import PriorSeries, PriorStudy
from daemon.analysis.series import best_ct_series, series_of_seeds

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _images(
    uid: str, n: int, thickness: float, iop: tuple[float, ...], description: str = "", kernel: str = ""
) -> list[Dataset]:
    out = []
    for _ in range(n):
        ds = Dataset()
        ds.Modality, ds.SeriesInstanceUID, ds.SliceThickness = "CT", uid, thickness
        ds.ImageOrientationPatient, ds.SeriesDescription, ds.ConvolutionKernel = list(iop), description, kernel
        out.append(ds)
    return out


def test_a_thin_coronal_reformat_is_never_preferred_to_an_axial_stack() -> None:
    series = (
        PriorSeries("1.1", "CT", "Lung 1.0", 0.6, 300, None, "B70f", CORONAL),
        PriorSeries("1.2", "CT", "Body 2.0", 2.0, 200, None, "B30f", AXIAL),
    )
    assert best_ct_series(PriorStudy("1", None, None, ("CT",), "index", series)).series_uid == "1.2"


def test_without_seeds_the_current_series_is_chosen_by_the_same_ranking() -> None:
    ct = {
        "thick": _images("thick", 40, 5.0, AXIAL),
        "lung": _images("lung", 30, 1.0, AXIAL, "Lung 1.0", "B70f"),
        "cor": _images("cor", 400, 0.5, CORONAL),
    }
    assert series_of_seeds([], ct) == "lung"
