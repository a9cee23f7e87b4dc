"""The in-memory synthetic study (``PhantomStudy``) and deterministic identities.

UIDs, patient identity and dates are derived from the case name and seed only,
so the same seed always yields the same objects.  Pure computation, no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import numpy as np

UID_ROOT = "1.2.826.0.1.3680043.10.1492."  # under pydicom's root, for synthetic objects


def make_uid(*parts) -> str:
    """A deterministic DICOM UID (<= 64 chars) from ``parts``."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    digits = str(int(h, 16))
    return (UID_ROOT + digits)[:64].rstrip("0") or UID_ROOT + "1"


_FIRST = ["ALEX", "SAM", "JORDAN", "CHRIS", "PAT", "ROBIN", "KIM", "LEE", "MORGAN", "DREW"]
_LAST = ["PHANTOM", "SYNTHETIC", "TESTCASE", "MODEL", "SIMULA"]


def make_patient(case: str, seed: int, first_study_date: dt.date) -> dict:
    """A synthetic patient (id, name, birth_date, sex, age_years) for a case and seed."""
    h = int(hashlib.sha256(f"patient|{case}|{seed}".encode()).hexdigest(), 16)
    age = 55 + h % 20  # screening-eligible ages 55-74
    sex = "M" if (h >> 8) % 2 else "F"
    birth = dt.date(first_study_date.year - age, 1 + (h >> 16) % 12, 1 + (h >> 24) % 28)
    if (first_study_date.month, first_study_date.day) < (birth.month, birth.day):
        birth = dt.date(birth.year - 1, birth.month, birth.day)
        age = first_study_date.year - birth.year - 1
        age += 1 if (first_study_date.month, first_study_date.day) >= (birth.month, birth.day) else 0
    name = f"{_LAST[(h >> 32) % len(_LAST)]}^{_FIRST[(h >> 40) % len(_FIRST)]}"
    return {
        "id": f"SYN{h % 10**8:08d}",
        "name": name,
        "birth_date": birth,
        "sex": sex,
        "age_years": int(age),
    }


def age_at(birth: dt.date, on: dt.date) -> int:
    """Whole years between ``birth`` and ``on``."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@dataclass
class PhantomStudy:
    """One synthetic CT study with its exact ground truth.

    ``hu`` (nz, ny, nx) float32 Hounsfield units (partial volume, PSF and noise
    applied); voxel (k, j, i) is at LPS (ox + i*sx, oy + j*sy, oz + k*sz) with
    ``origin_lps_mm`` = (ox, oy, oz) and ``spacing_mm`` = (sx, sy, sz).
    ``nodules`` are the JSON-able ground-truth records, ``truth`` the per-study
    part of truth.json.
    """

    hu: np.ndarray
    origin_lps_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    study_date: dt.date
    patient: dict
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    nodules: list[dict] = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    slice_thickness_mm: float | None = None
    noise_sd_hu: float = 40.0
    case: str = ""
    seed: int = 0
    study_index: int = 0
    exam_labels: list[str] = field(default_factory=list)
    acquisition: dict = field(default_factory=dict)
    clean_hu: np.ndarray | None = field(default=None, repr=False)  # noise-free image (after PSF), for tests

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)

    def voxel_to_lps(self, kji) -> np.ndarray:
        """LPS mm of (fractional) voxel indices (k, j, i)."""
        k, j, i = np.asarray(kji, dtype=float).T
        o, s = self.origin_lps_mm, self.spacing_mm
        return np.stack([o[0] + i * s[0], o[1] + j * s[1], o[2] + k * s[2]], axis=-1)

    def lps_to_voxel(self, p) -> np.ndarray:
        """Fractional voxel indices (k, j, i) of LPS points."""
        p = np.asarray(p, dtype=float)
        f = (p - np.asarray(self.origin_lps_mm)) / np.asarray(self.spacing_mm)
        return f[..., ::-1]

    def slice_z_mm(self) -> np.ndarray:
        """z (mm) of every slice, ascending."""
        return self.origin_lps_mm[2] + np.arange(self.hu.shape[0]) * self.spacing_mm[2]
