"""Seeds -> findings (pure): the reader's marks read, and one measured, characterised finding per nodule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from pydicom.dataset import Dataset

from daemon.analysis.identity import SAME_NODULE_MM, assign_identities, distance_mm, match_previous, new_tracking_uid
from dicom_sr.findings import NoduleFinding, ReaderAttributes, Seed


def _merge_exam_flags(flags: ReaderAttributes, more: ReaderAttributes) -> ReaderAttributes:
    return replace(
        flags,
        infection_or_inflammation=bool(flags.infection_or_inflammation) or bool(more.infection_or_inflammation),
        suspicious_features=bool(flags.suspicious_features) or bool(more.suspicious_features),
        actionable_additional_findings=bool(flags.actionable_additional_findings)
        or bool(more.actionable_additional_findings),
        no_nodules=bool(flags.no_nodules) or bool(more.no_nodules),
    )


def _inside(finding: NoduleFinding, position: Sequence[float], volume_index: Callable) -> bool:  # type: ignore[type-arg]
    m = finding.measurement
    if m is None or m.mask is None:
        return False
    k, j, i = volume_index(position)
    z0, y0, x0 = m.mask.origin_index_zyx
    dz, dy, dx = k - z0, j - y0, i - x0
    voxels = m.mask.reported  # the outline the radiologist sees
    shape = voxels.shape
    return 0 <= dz < shape[0] and 0 <= dy < shape[1] and 0 <= dx < shape[2] and bool(voxels[dz, dy, dx])


def _same_unmeasured_mark(finding: NoduleFinding, seed: Seed) -> bool:
    """``finding`` found no nodule at a mark within SAME_NODULE_MM of ``seed``'s."""
    mark = finding.seed
    return (
        finding.measurement is None
        and mark is not None
        and distance_mm(mark.position_lps_mm, seed.position_lps_mm) < SAME_NODULE_MM
    )


def read_all_seeds(
    seed_objects: Sequence[Dataset | dict[str, Any]], images: dict[str, Dataset]
) -> tuple[list[Seed], ReaderAttributes]:
    """Stage 1: every seed of every seed object, and the exam-level reader flags."""
    from dicom_sr.seeds import read_exam_labels, read_seeds

    seeds: list[Seed] = []
    flags = ReaderAttributes()
    for obj in seed_objects:
        seeds.extend(s for s in read_seeds(obj, images=images) if not s.attributes.no_nodules)
        flags = _merge_exam_flags(flags, read_exam_labels(obj))
    for s in seeds:
        flags = _merge_exam_flags(flags, s.attributes)
    return seeds, flags


def measure_seed(image: Any, position: Sequence[float], lungs: Any) -> tuple[Any, str | None, Any]:
    """One seed measured and characterised: (measurement or None, why not, algorithm characterization)."""
    from segmentation.characterize import characterize
    from segmentation.production import measure_at_seed
    from segmentation.types import Characterization, NoNoduleAtSeed

    try:
        m = measure_at_seed(image, position, lung_mask=lungs)
    except NoNoduleAtSeed as exc:
        return None, str(exc), Characterization()
    return m, None, characterize(image, m, lung_mask=lungs)


# measure_map(image, lungs, positions) -> [measure_seed(image, p, lungs) for p in positions], in any way
MeasureMap = Callable[[Any, Any, Sequence[Sequence[float]]], Sequence[tuple[Any, str | None, Any]]]


def segment_seeds(
    image: Any,
    seeds: Sequence[Seed],
    study_uid: str,
    previous: Sequence[NoduleFinding] = (),
    lungs: Any = None,
    measure_map: MeasureMap | None = None,
) -> list[NoduleFinding]:
    """Stage 3: one finding per nodule; seeds on an already-found nodule are merged into it.

    Tracking identity (:mod:`daemon.analysis.identity`): a nodule of the report this one
    replaces keeps its tracking UID and identifier; new nodules get the next "Nodule N".
    ``measure_map``: measures every seed up front (e.g. in parallel processes; the nodules are
    independent); the findings are the same as measured one by one (None), a seed merged into a
    nodule found before it is then measured for nothing.
    """
    from segmentation.characterize import merge_reader_attributes
    from segmentation.production import series_lung_mask

    lungs = series_lung_mask(image) if lungs is None else lungs
    measured: dict[int, tuple[Any, str | None, Any]] = {}
    if measure_map is not None and len(seeds) > 1:
        # one measurement per distinct position (an SR and a GSPS of one read mark the same points)
        keys = [tuple(float(v) for v in s.position_lps_mm) for s in seeds]
        positions = list(dict.fromkeys(keys))
        results = dict(zip(positions, measure_map(image, lungs, positions), strict=True))
        measured = {n: results[key] for n, key in enumerate(keys)}

    def volume_index(position: Sequence[float]) -> tuple[int, int, int]:
        i, j, k = image.TransformPhysicalPointToIndex(tuple(float(v) for v in position))
        return k, j, i

    findings: list[NoduleFinding] = []
    carried: dict[int, tuple[str, str]] = {}  # finding index -> identity of the replaced report's nodule
    for n, seed in enumerate(seeds):
        same = next((k for k, f in enumerate(findings) if _inside(f, seed.position_lps_mm, volume_index)), None)
        if same is not None:
            merged = merge_reader_attributes(findings[same].characterization, seed.attributes)
            findings[same] = replace(findings[same], characterization=merged)
            continue
        m, error, algorithm = measured[n] if n in measured else measure_seed(image, seed.position_lps_mm, lungs)
        if m is None:  # the same mark in another seed object (SR and GSPS of one read): one unmeasured finding
            same = next((k for k, f in enumerate(findings) if _same_unmeasured_mark(f, seed)), None)
            if same is not None:
                merged = merge_reader_attributes(findings[same].characterization, seed.attributes)
                findings[same] = replace(findings[same], characterization=merged)
                continue
        if m is not None:
            twin = next(
                (
                    k
                    for k, f in enumerate(findings)
                    if f.measurement and distance_mm(f.measurement.centroid_lps_mm, m.centroid_lps_mm) < SAME_NODULE_MM
                ),
                None,
            )
            if twin is not None:
                merged = merge_reader_attributes(findings[twin].characterization, seed.attributes)
                findings[twin] = replace(findings[twin], characterization=merged)
                continue
        centroid = m.centroid_lps_mm if m is not None else None
        match = (
            match_previous(previous, centroid, m.mean_diameter_mm) if m is not None and centroid is not None else None
        )
        if match is not None:
            carried[len(findings)] = (match.tracking_id, match.tracking_uid)
        tracking_id, tracking_uid = "", new_tracking_uid(study_uid, seed, centroid)  # numbered below
        characterization = merge_reader_attributes(algorithm, seed.attributes)
        findings.append(
            NoduleFinding(
                tracking_id=tracking_id,
                tracking_uid=tracking_uid,
                seed=seed,
                measurement=m,
                characterization=characterization,
                error=error,
            )
        )
    return assign_identities(findings, carried, (f.tracking_id for f in previous))
