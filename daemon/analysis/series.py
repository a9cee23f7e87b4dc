"""Which CT series of a study to measure on, compare with or fetch, chosen from headers alone (pure).

One ranking (:func:`best_ct_series`) for the series the node fetches from the PACS, the prior
series it compares with, and the current series when the seeds do not say which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pydicom.dataset import Dataset

from daemon.analysis.dicomvalues import to_float
from daemon.analysis.errors import AnalysisError
from daemon.analysis.priors import PriorSeries, PriorStudy
from dicom_sr.findings import Seed

_NOT_PRIMARY_AXIAL = ("COR", "SAG", "MIP", "MPR", "SCOUT", "LOCALI", "TOPO", "SURVIEW", "3D", "VRT", "MINIP", "DOSE")
_LUNG_WORDS = ("LUNG", "PULM", "POUMON")  # "Lung 1.0", "Pulmo", "Lungenfenster"
# sharp (lung) reconstruction kernels by vendor: Siemens B50-B80/Br5x-6x/Bl5x-7x/I50-I70,
# GE LUNG/BONE/BONEPLUS, Philips L/YA/YB/YC, Canon FC5x/FC8x
_LUNG_KERNEL_PREFIXES = (
    "B50",
    "B60",
    "B70",
    "B80",
    "BR5",
    "BR6",
    "BL5",
    "BL6",
    "BL7",
    "I50",
    "I70",
    "FC5",
    "FC8",
    "LUNG",
)
_LUNG_KERNELS = {"L", "YA", "YB", "YC", "BONE", "BONEPLUS"}


def _lung_score(s: PriorSeries) -> int:
    """0-2: one point for a lung description, one for a lung kernel."""
    text = (s.description or "").upper()
    kernel = (s.convolution_kernel or "").upper().strip()
    score = 0
    if any(word in text for word in _LUNG_WORDS):
        score += 1
    if kernel and (kernel in _LUNG_KERNELS or kernel.startswith(_LUNG_KERNEL_PREFIXES)):
        score += 1
    return score


def _thickness_class(thickness_mm: float | None) -> int:
    if thickness_mm is None:
        return 1
    if thickness_mm <= 1.5:
        return 2  # thin: volumetry works
    if thickness_mm <= 3.0:
        return 1
    return 0


def best_ct_series(study: PriorStudy) -> PriorSeries | None:
    """The series of ``study`` best suited for nodule comparison, or None without CT.

    Ranking, most important first: a primary axial stack (not a localizer,
    MIP or coronal/sagittal reformat by description, more than 10 images when
    known), thin slices (≤ 1.5 mm, then ≤ 3 mm), lung description or sharp
    lung kernel, more instances, thinner slices.
    """
    candidates = [s for s in study.series if s.modality == "CT"]
    if not candidates:
        return None

    def key(s: PriorSeries) -> tuple:  # type: ignore[type-arg]
        text = (s.description or "").upper()
        axial_stack = (
            not any(word in text for word in _NOT_PRIMARY_AXIAL)
            and (s.n_instances is None or s.n_instances > 10)
            and orientation_is_axial(s.image_orientation) is not False
        )
        return (
            axial_stack,
            _thickness_class(s.slice_thickness_mm),
            _lung_score(s),
            s.n_instances or 0,
            -(s.slice_thickness_mm if s.slice_thickness_mm is not None else 99.0),
            s.series_uid,  # deterministic tie-break
        )

    return max(candidates, key=key)


def series_from_headers(series_uid: str, images: Sequence[Dataset]) -> PriorSeries:
    """What :func:`best_ct_series` ranks, from a series' image headers."""
    ds = images[0]
    iop = tuple(to_float(v) or 0.0 for v in (ds.get("ImageOrientationPatient") or []))
    return PriorSeries(
        series_uid=series_uid,
        modality=str(ds.get("Modality") or "CT").upper(),
        description=str(ds.get("SeriesDescription") or "") or None,
        slice_thickness_mm=to_float(ds.get("SliceThickness")),
        n_instances=len(images),
        manufacturer=str(ds.get("Manufacturer") or "") or None,
        convolution_kernel=str(ds.get("ConvolutionKernel") or "") or None,
        image_orientation=iop or None,
    )


def series_of_seeds(seeds: Sequence[Seed], ct_by_series: dict[str, list[Dataset]]) -> str:
    """The CT series the seeds were drawn on, else the best axial series (:func:`best_ct_series`)."""
    votes: dict[str, int] = {}
    for seed in seeds:
        if seed.series_uid in ct_by_series:
            votes[seed.series_uid] = votes.get(seed.series_uid, 0) + 1
    if votes:
        return max(votes, key=lambda uid: (votes[uid], len(ct_by_series[uid])))
    axial = [series_from_headers(uid, images) for uid, images in ct_by_series.items() if is_axial(images[0])]
    best = best_ct_series(PriorStudy("", None, None, ("CT",), "index", tuple(replace(s, modality="CT") for s in axial)))
    if best is None:
        raise AnalysisError("the study has no axial CT series to analyse")
    return best.series_uid


def orientation_is_axial(iop: Sequence[float] | None) -> bool | None:
    """Image rows and columns in the patient's axial plane; None when the orientation is unknown."""
    if iop is None or len(iop) != 6:
        return None
    normal_z = iop[0] * iop[4] - iop[1] * iop[3]
    return abs(normal_z) > 0.9


def is_axial(ds: Dataset) -> bool:
    iop = [float(v) for v in (ds.get("ImageOrientationPatient") or [])]
    return orientation_is_axial(iop) is True


def one_acquisition(images: Sequence[Dataset], seeds: Sequence[Seed]) -> tuple[list[Dataset], str | None]:
    """The images of one acquisition when a series holds two sweeps over the same range (two Acquisition
    Numbers whose slice positions overlap), with a note saying which; else all images and None.

    Sorted together, two sweeps look like a series whose slices jump sideways ("gantry tilt 87 degrees")
    or repeat positions.  The acquisition the reader's marks were drawn on is taken, else the one with
    the most images (then the lowest number).  Acquisitions that follow each other along the table
    (step-and-shoot scans) are one volume and are kept together.
    """
    groups: dict[str, list[Dataset]] = {}
    for ds in images:
        groups.setdefault(str(ds.get("AcquisitionNumber", "") or ""), []).append(ds)
    if len(groups) < 2:
        return list(images), None

    def z_range(group: list[Dataset]) -> tuple[float, float]:
        zs = [to_float(ds.ImagePositionPatient[2]) or 0.0 for ds in group if ds.get("ImagePositionPatient")]
        return (min(zs), max(zs)) if zs else (0.0, 0.0)

    ranges = sorted(z_range(g) for g in groups.values())
    if all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])):
        return list(images), None  # consecutive along the table: one volume
    marked = {s.referenced_sop_instance_uid for s in seeds if s.referenced_sop_instance_uid}

    def rank(number: str) -> tuple[int, int, float]:
        group = groups[number]
        hits = sum(str(ds.get("SOPInstanceUID", "")) in marked for ds in group)
        return (hits, len(group), -(to_float(number) or 0.0))

    chosen = max(groups, key=rank)
    why = "the one the reader marked" if rank(chosen)[0] else "the one with the most images"
    numbers = ", ".join(sorted(groups, key=lambda n: to_float(n) or 0.0))
    note = (
        f"the CT series has {len(groups)} acquisitions over the same range (Acquisition Numbers {numbers}); "
        f"analysed acquisition {chosen or '(none)'} ({len(groups[chosen])} images), {why}"
    )
    return groups[chosen], note
