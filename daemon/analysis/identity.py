"""Tracking identity of nodules (pure): which nodule keeps which tracking UID and "Nodule N" identifier.

A nodule of the report a new one replaces keeps its tracking UID and identifier when its
centroid is found again; a new nodule gets the next free "Nodule N" and a tracking UID derived
from the study and where it is (so the same analysis gives the same UIDs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from pydicom.uid import generate_uid

from dicom_sr.findings import NoduleFinding, Seed

SAME_NODULE_MM = 3.0  # two seeds whose nodules' centroids are this close mark the same nodule


def distance_mm(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)) ** 0.5)


def new_tracking_uid(study_uid: str, seed: Seed, centroid: Sequence[float] | None) -> str:
    """A deterministic tracking UID for a nodule first found in ``study_uid``."""
    where = centroid if centroid is not None else seed.position_lps_mm
    return str(generate_uid(entropy_srcs=[study_uid, "noduled-nodule", ",".join(f"{v:.0f}" for v in where)]))


def _number(tracking_id: str) -> int:
    tail = tracking_id.split()[-1] if tracking_id.split() else ""
    return int(tail) if tail.isdigit() else 0


class TrackingIds:
    """Hands out "Nodule N" identifiers after every earlier one (``earlier_ids``) and not used by earlier calls."""

    def __init__(self, earlier_ids: Iterable[str] = ()) -> None:
        self.used = set(earlier_ids)
        self._next = 1 + max((_number(t) for t in self.used), default=0)

    def next(self) -> str:
        while f"Nodule {self._next}" in self.used:
            self._next += 1
        tracking_id = f"Nodule {self._next}"
        self.used.add(tracking_id)
        return tracking_id


def assign_identities(
    findings: Sequence[NoduleFinding], carried: Mapping[int, tuple[str, str]], earlier_ids: Iterable[str]
) -> list[NoduleFinding]:
    """The one rule of tracking identity.

    Finding ``i`` in ``carried`` keeps the (tracking identifier, tracking UID) of the earlier
    nodule it was found to be; every other finding, in order, gets the next "Nodule N" after all
    of ``earlier_ids`` and of the carried ones (its tracking UID is left as it is).
    """
    ids = TrackingIds([*earlier_ids, *(tracking_id for tracking_id, _ in carried.values())])
    out = []
    for i, f in enumerate(findings):
        if i in carried:
            tracking_id, tracking_uid = carried[i]
            out.append(replace(f, tracking_id=tracking_id, tracking_uid=tracking_uid))
        else:
            out.append(replace(f, tracking_id=ids.next()))
    return out


def match_previous(
    previous: Sequence[NoduleFinding], centroid: Sequence[float], mean_diameter_mm: float
) -> NoduleFinding | None:
    """The nodule of the replaced report found again at ``centroid``, or None."""
    match = min(
        (p for p in previous if p.measurement is not None),
        key=lambda p: distance_mm(p.measurement.centroid_lps_mm, centroid),  # type: ignore[union-attr]
        default=None,
    )
    if match is None or match.measurement is None:
        return None
    if distance_mm(match.measurement.centroid_lps_mm, centroid) > max(SAME_NODULE_MM, mean_diameter_mm / 2):
        return None
    return match
