"""Seeds -> findings (pure): the reader's marks read, and one measured, characterised finding per nodule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from pydicom.dataset import Dataset

from daemon.analysis.identity import SAME_NODULE_MM, TrackingIds, distance_mm, match_previous, new_tracking_uid
from dicom_sr.findings import NoduleFinding, ReaderAttributes, Seed


def _merge_exam_flags(flags: ReaderAttributes, more: ReaderAttributes) -> ReaderAttributes:
    names = ("infection_or_inflammation", "suspicious_features", "actionable_additional_findings", "no_nodules")
    return replace(flags, **{n: bool(getattr(flags, n)) or bool(getattr(more, n)) for n in names})


def _inside(finding: NoduleFinding, position: Sequence[float], volume_index: Callable) -> bool:  # type: ignore[type-arg]
    m = finding.measurement
    if m is None or m.mask is None:
        return False
    k, j, i = volume_index(position)
    z0, y0, x0 = m.mask.origin_index_zyx
    dz, dy, dx = k - z0, j - y0, i - x0
    shape = m.mask.mask.shape
    return 0 <= dz < shape[0] and 0 <= dy < shape[1] and 0 <= dx < shape[2] and bool(m.mask.mask[dz, dy, dx])


def read_all_seeds(seed_objects: Sequence[Dataset | dict], images: dict[str, Dataset]) -> tuple[list[Seed], ReaderAttributes]:  # type: ignore[type-arg]
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


def segment_seeds(image, seeds: Sequence[Seed], study_uid: str, previous: Sequence[NoduleFinding] = (), lungs=None) -> list[NoduleFinding]:  # type: ignore[no-untyped-def]
    """Stage 3: one finding per nodule; seeds on an already-found nodule are merged into it.

    Tracking identity (:mod:`daemon.analysis.identity`): a nodule of the report this one
    replaces keeps its tracking UID and identifier; new nodules get the next "Nodule N".
    """
    from segmentation.characterize import characterize, merge_reader_attributes
    from segmentation.production import measure_at_seed, series_lung_mask
    from segmentation.types import Characterization, NoNoduleAtSeed

    lungs = series_lung_mask(image) if lungs is None else lungs

    def volume_index(position: Sequence[float]) -> tuple[int, int, int]:
        i, j, k = image.TransformPhysicalPointToIndex(tuple(float(v) for v in position))
        return k, j, i

    findings: list[NoduleFinding] = []
    ids = TrackingIds(previous)
    for seed in seeds:
        same = next((f for f in findings if _inside(f, seed.position_lps_mm, volume_index)), None)
        if same is not None:
            merged = merge_reader_attributes(same.characterization, seed.attributes)
            findings[findings.index(same)] = replace(same, characterization=merged)
            continue
        try:
            m = measure_at_seed(image, seed.position_lps_mm, lung_mask=lungs)
        except NoNoduleAtSeed as exc:
            m, error = None, str(exc)
        else:
            error = None
        if m is not None:
            twin = next((f for f in findings if f.measurement and distance_mm(f.measurement.centroid_lps_mm, m.centroid_lps_mm) < SAME_NODULE_MM), None)
            if twin is not None:
                merged = merge_reader_attributes(twin.characterization, seed.attributes)
                findings[findings.index(twin)] = replace(twin, characterization=merged)
                continue
        centroid = m.centroid_lps_mm if m is not None else None
        match = match_previous(previous, centroid, m.mean_diameter_mm) if m is not None and centroid is not None else None
        if match is not None:
            tracking_id, tracking_uid = match.tracking_id, match.tracking_uid
        else:
            tracking_id, tracking_uid = ids.next(), new_tracking_uid(study_uid, seed, centroid)
        algorithm = characterize(image, m, lung_mask=lungs) if m is not None else Characterization()
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
    return findings
