"""Named cases: which nodules, where, on which dates, and how the patient moved between scans.

``generate_case(name, size, seed)`` builds the studies of a case in date order.
Nodules are defined in the body frame; each study places them through its
:class:`~test_images.motion.Motion` (rigid + breathing) and scales them to the
volume of that time point (exponential growth with a known VDT).  Truth
centroids are in each study's own (scanner) LPS frame.  Pure computation.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace

import numpy as np

from test_images import anatomy
from test_images.motion import Motion
from test_images.nodules import jittered_seed, make_nodule, nodule_truth
from test_images.render import Grid
from test_images.scene import acquire, paint_nodule
from test_images.single import find_uniform_region
from test_images.study import PhantomStudy, age_at, make_patient, make_uid

SIZES = {
    # (nx = ny, nz, pixel mm, slice mm)
    "full": (512, 300, 0.7, 1.0),
    "small": (256, 96, 0.7, 1.0),
}
FULL_Z0 = -185.0


@dataclass
class NoduleSpec:
    """A nodule of a case, in the body frame; ``volume_factor[i]`` scales its volume at study i (None = absent)."""

    id: str
    kind: str
    diameter_mm: float
    lobe_hint: str  # 'RUL', 'RML', 'RLL', 'LUL', 'LLL'
    volume_factor: list[float | None] = field(default_factory=lambda: [1.0])
    params: dict = field(default_factory=dict)
    labels: list[str] | None = None
    position_body_mm: tuple[float, float, float] | None = None

    def volume_factor_max(self) -> float:
        return max(v for v in self.volume_factor if v is not None)


@dataclass
class CaseSpec:
    name: str
    description: str
    nodules: list[NoduleSpec]
    study_days: list[int] = field(default_factory=lambda: [0])
    motions: list[Motion] = field(default_factory=lambda: [Motion()])
    exam_labels: list[list[str]] = field(default_factory=lambda: [[]])
    noise_sd_hu: float = 40.0


def _growth_factors(days: list[int], vdt_days: float | None) -> list[float]:
    if vdt_days is None:
        return [1.0 for _ in days]
    return [2.0 ** ((d - days[0]) / vdt_days) for d in days]


_MOTIONS = [
    Motion(),
    Motion((1.5, -1.0, 2.0), (6.0, -9.0, 14.0), (2.0, 3.0, 7.0)),
    Motion((-1.0, 1.5, -2.5), (-8.0, 5.0, -11.0), (-1.5, -2.0, -5.0)),
    Motion((0.5, 2.0, 1.0), (3.0, 12.0, 8.0), (1.0, 2.5, 4.0)),
]


def case_specs() -> dict[str, CaseSpec]:
    """All named cases."""
    c: dict[str, CaseSpec] = {}
    c["solid-sizes"] = CaseSpec(
        "solid-sizes",
        "solid spheres and ellipsoids 3-30 mm",
        [
            NoduleSpec("N1", "solid", 3.0, "RUL"),
            NoduleSpec("N2", "solid", 6.0, "RUL", params={"elongation": 1.0}),
            NoduleSpec("N3", "solid", 8.0, "RLL", params={"elongation": 1.4}),
            NoduleSpec("N4", "solid", 12.0, "RML"),
            NoduleSpec("N5", "solid", 20.0, "RLL", params={"elongation": 1.3}),
            NoduleSpec("N6", "solid", 30.0, "RUL"),
        ],
    )
    c["juxtavascular"] = CaseSpec(
        "juxtavascular",
        "solid nodules touching or crossed by 1-3 mm vessels",
        [
            NoduleSpec("N1", "juxtavascular", 7.0, "RUL", params={"n_vessels": 1, "vessel_radius_mm": 0.8}),
            NoduleSpec("N2", "juxtavascular", 10.0, "RLL", params={"n_vessels": 2, "vessel_radius_mm": 1.2}),
            NoduleSpec("N3", "juxtavascular", 5.0, "RML", params={"n_vessels": 1, "vessel_radius_mm": 0.6}),
        ],
    )
    c["juxtapleural"] = CaseSpec(
        "juxtapleural",
        "nodules with broad pleural contact and perifissural nodules",
        [
            NoduleSpec("N1", "juxtapleural", 8.0, "RUL"),
            NoduleSpec("N2", "juxtapleural", 14.0, "RLL", params={"elongation": 1.3}),
            NoduleSpec("N3", "perifissural", 6.0, "RLL"),
        ],
    )
    c["ggn"] = CaseSpec(
        "ggn",
        "non-solid (ground-glass) nodules 8-35 mm",
        [
            NoduleSpec("N1", "ggn", 9.0, "LUL"),
            NoduleSpec("N2", "ggn", 18.0, "LLL"),
            NoduleSpec("N3", "ggn", 30.0, "LUL", params={"elongation": 1.2}),
        ],
    )
    c["part-solid"] = CaseSpec(
        "part-solid",
        "part-solid nodules with solid cores of known size",
        [
            NoduleSpec("N1", "part-solid", 12.0, "RUL", params={"core_diameter_mm": 4.0}),
            NoduleSpec("N2", "part-solid", 20.0, "RLL", params={"core_diameter_mm": 8.0}),
        ],
    )
    c["irregular"] = CaseSpec(
        "irregular",
        "lobulated and spiculated solid nodules",
        [
            NoduleSpec("N1", "lobulated", 10.0, "RUL"),
            NoduleSpec("N2", "spiculated", 14.0, "RLL"),
            NoduleSpec("N3", "spiculated", 9.0, "RML"),
        ],
    )
    c["benign"] = CaseSpec(
        "benign",
        "calcified (central and complete) and fat-containing nodules",
        [
            NoduleSpec("N1", "calcified", 8.0, "LUL", params={"calcification": "central"}),
            NoduleSpec("N2", "calcified", 5.0, "LLL", params={"calcification": "complete"}),
            NoduleSpec("N3", "fat", 14.0, "LLL"),
        ],
    )
    c["no-nodules"] = CaseSpec("no-nodules", "normal chest, read as no nodules", [], exam_labels=[["no-nodules"]])
    c["multi"] = CaseSpec(
        "multi",
        "seven nodules of mixed kinds in one study",
        [
            NoduleSpec("N1", "solid", 6.0, "RUL"),
            NoduleSpec("N2", "ggn", 12.0, "RUL"),
            NoduleSpec("N3", "part-solid", 14.0, "RLL", params={"core_diameter_mm": 5.0}),
            NoduleSpec("N4", "juxtapleural", 7.0, "RLL"),
            NoduleSpec("N5", "calcified", 6.0, "RML"),
            NoduleSpec("N6", "spiculated", 11.0, "RLL"),
            NoduleSpec("N7", "juxtavascular", 5.0, "RUL", params={"n_vessels": 1, "vessel_radius_mm": 0.8}),
        ],
    )
    days = [0, 365]
    c["growth"] = CaseSpec(
        "growth",
        "baseline + 12 months: growing, stable, decreased, new and resolved nodules",
        [
            NoduleSpec("N1", "solid", 7.0, "RUL", _growth_factors(days, 180.0)),  # growing, VDT 180 d
            NoduleSpec("N2", "solid", 6.0, "RLL", [1.0, 1.0]),  # stable
            NoduleSpec("N3", "solid", 9.0, "RML", [1.0, 0.55]),  # decreased
            NoduleSpec("N4", "solid", 5.0, "RLL", [None, 1.0]),  # new
            NoduleSpec("N5", "solid", 5.5, "RUL", [1.0, None]),  # resolved
        ],
        study_days=days,
        motions=_MOTIONS[:2],
        exam_labels=[[], []],
    )
    days = [0, 365, 730]
    c["slow-growth"] = CaseSpec(
        "slow-growth",
        "3 time points, VDT 800 d: >25 % over two intervals",
        [
            NoduleSpec("N1", "solid", 8.0, "RUL", _growth_factors(days, 800.0)),
            NoduleSpec("N2", "solid", 6.0, "RLL", [1.0, 1.0, 1.0]),
        ],
        study_days=days,
        motions=_MOTIONS[:3],
        exam_labels=[[], [], []],
    )
    days = [0, 365, 730]
    c["ggn-growth"] = CaseSpec(
        "ggn-growth",
        "a ground-glass nodule that grows and develops a solid core",
        [
            NoduleSpec("N1", "ggn", 12.0, "RUL", _growth_factors(days, 900.0)),
            NoduleSpec(
                "N2",
                "part-solid",
                14.0,
                "RLL",
                [1.0, 1.15, 1.3],
                params={"core_diameter_mm": 3.0, "core_growth": [1.0, 1.6, 2.3]},
            ),
        ],
        study_days=days,
        motions=_MOTIONS[:3],
        exam_labels=[[], [], []],
    )
    return c


CASES = case_specs()


def list_cases() -> list[tuple[str, str]]:
    """(name, one-line description) of every case."""
    return [(k, v.description) for k, v in CASES.items()]


# ------------------------------------------------------------------ placement
_LOBE_BOX = {  # body-frame sampling boxes (x, y, z ranges) per lobe, kept compact so 'small' can crop them
    "RUL": ((-115.0, -50.0), (-35.0, 20.0), (12.0, 40.0)),
    "RML": ((-110.0, -55.0), (-60.0, -35.0), (-30.0, -18.0)),
    "RLL": ((-115.0, -50.0), (32.0, 62.0), (-12.0, 18.0)),
    "LUL": ((50.0, 115.0), (-35.0, 20.0), (12.0, 40.0)),
    "LLL": ((50.0, 115.0), (32.0, 62.0), (-12.0, 18.0)),
}


def _min_vessel_clearance(p, chest: anatomy.Chest) -> float:
    """Smallest distance (mm) from ``p`` to the surface of any vessel (negative inside one)."""
    a = np.array([s.p0 for s in chest.vessels])
    b = np.array([s.p1 for s in chest.vessels])
    r0 = np.array([s.r0 for s in chest.vessels])
    r1 = np.array([s.r1 for s in chest.vessels])
    ab = b - a
    t = np.clip(((np.asarray(p) - a) * ab).sum(1) / (ab * ab).sum(1), 0.0, 1.0)
    d = np.linalg.norm(np.asarray(p) - (a + t[:, None] * ab), axis=1) - (r0 + (r1 - r0) * t)
    return float(d.min())


def _place(spec: NoduleSpec, rng, chest, placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A body-frame centre for ``spec`` in its lobe, clear of the pleura, vessels and other nodules."""
    r = spec.diameter_mm / 2 * max(spec.volume_factor_max(), 1.0) ** (1 / 3) * spec.params.get("elongation", 1.0) ** 0.5
    box = _LOBE_BOX[spec.lobe_hint]
    side = spec.lobe_hint[0]
    for _ in range(4000):
        p = np.array([rng.uniform(*box[0]), rng.uniform(*box[1]), rng.uniform(*box[2])])
        if anatomy.lobe_of(p) != spec.lobe_hint:
            continue
        if spec.kind == "juxtapleural":
            # slide laterally to the chest wall: 45 % of the radius beyond the pleura
            d = np.array([-1.0 if side == "R" else 1.0, rng.uniform(-0.3, 0.3), 0.0])
            d /= np.linalg.norm(d)
            t = anatomy.pleural_distance_mm(p, side, d)
            p = p + d * (t - 0.55 * r)
            if anatomy.lobe_of(p) != spec.lobe_hint:
                continue
        elif spec.kind == "perifissural":
            z0 = anatomy.OBLIQUE_Z0[side]
            # centred on the oblique fissure, nudged 0.2 mm to the side of its lobe
            p[2] = z0 + anatomy.OBLIQUE_SLOPE * p[1] + (-0.2 if spec.lobe_hint in ("RLL", "LLL") else 0.2)
            if not anatomy.lung_side_inside(p[None], side)[0]:
                continue
        else:
            dirs = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
            if min(anatomy.pleural_distance_mm(p, side, d, refine=False) for d in dirs) < r + 4.0:
                continue
            # keep free nodules off the fissures
            zf = anatomy.OBLIQUE_Z0[side] + anatomy.OBLIQUE_SLOPE * p[1]
            if abs(p[2] - zf) / np.hypot(1, anatomy.OBLIQUE_SLOPE) < r + 2.0:
                continue
            if side == "R" and p[2] > zf and abs(p[2] - anatomy.HORIZONTAL_Z) < r + 2.0:
                continue
        if spec.kind not in ("juxtavascular",) and _min_vessel_clearance(p, chest) < r + 2.0:
            continue
        if any(np.linalg.norm(p - q) < r + rq + 6.0 for q, rq in placed):
            continue
        placed.append((p, r))
        return p
    raise RuntimeError(f"could not place nodule {spec.id} ({spec.kind}, {spec.diameter_mm} mm) in {spec.lobe_hint}")


# ------------------------------------------------------------------ generation
def _grid_for(size: str, centres_scan: list[np.ndarray], *, spacing=None, n_slices=None) -> Grid:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected 'full' or 'small'")
    n, nz, px, sz = SIZES[size]
    if spacing is not None:
        px, sz = spacing
    if n_slices is not None:
        nz = n_slices
    if size == "full":
        return Grid((nz, n, n), (-px * (n - 1) / 2, -px * (n - 1) / 2, FULL_Z0), (px, px, sz))
    if centres_scan:
        c = np.asarray(centres_scan)
        mid = (c.min(axis=0) + c.max(axis=0)) / 2
        span = c.max(axis=0) - c.min(axis=0)
        if span[0] > (n - 40) * px or span[1] > (n - 40) * px or span[2] > (nz - 26) * sz:
            raise ValueError(f"nodules span {span.round(1).tolist()} mm: too far apart for the 'small' field")
    else:
        mid = np.array([-80.0, 0.0, 10.0])
    origin = (mid[0] - px * (n - 1) / 2, mid[1] - px * (n - 1) / 2, mid[2] - sz * (nz - 1) / 2)
    # lattice aligned with the full grid, so small is a crop of full
    o_full = np.array([-px * (SIZES["full"][0] - 1) / 2, -px * (SIZES["full"][0] - 1) / 2, FULL_Z0])
    origin = o_full + np.round((np.asarray(origin) - o_full) / np.array([px, px, sz])) * np.array([px, px, sz])
    return Grid((nz, n, n), tuple(float(v) for v in origin), (px, px, sz))


def generate_case(
    name: str,
    size: str = "small",
    seed: int = 0,
    *,
    noise_sd_hu: float | None = None,
    jitter_fraction: float = 0.3,
    slice_thickness_mm: float | None = None,
    spacing_mm: tuple[float, float] | None = None,
    n_slices: int | None = None,
    first_study_date: dt.date = dt.date(2024, 2, 12),
    keep_clean: bool | None = None,
    images: bool = True,
) -> list[PhantomStudy]:
    """The studies of case ``name`` (date order) at ``size`` 'small' or 'full', deterministic in ``seed``.

    ``spacing_mm`` = (pixel mm, slice spacing mm) overrides the size's lattice;
    ``slice_thickness_mm`` > slice spacing gives overlapping reconstructions.
    ``keep_clean`` keeps the noise-free blurred image in ``clean_hu`` (default:
    for 'small' only; it costs one more 3-D filtering pass).
    ``images=False`` computes the truth only (no rendering): ``hu`` is then an
    empty (0, 0, 0) array and ``truth["images"]`` is False.
    """
    if keep_clean is None:
        keep_clean = size == "small"
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; known cases: {', '.join(CASES)}")
    spec = CASES[name]
    noise = spec.noise_sd_hu if noise_sd_hu is None else float(noise_sd_hu)
    rng_anat = np.random.default_rng([seed, 11])
    chest = anatomy.Chest.create(rng_anat)
    rng_place = np.random.default_rng([seed, 12, sum(map(ord, name))])
    placed: list = []
    centres_body = {}
    for ns in spec.nodules:
        centres_body[ns.id] = (
            ns.position_body_mm if ns.position_body_mm is not None else _place(ns, rng_place, chest, placed)
        )
    patient = make_patient(name, seed, first_study_date)
    studies: list[PhantomStudy] = []
    truth_nodules_by_study = []
    for si, day in enumerate(spec.study_days):
        motion = spec.motions[si]
        date = first_study_date + dt.timedelta(days=day)
        nodules = []
        for ns in spec.nodules:
            rng_k = np.random.default_rng([seed, 14, sum(map(ord, name)), int(ns.id[1:])])
            factor = ns.volume_factor[si] if si < len(ns.volume_factor) else ns.volume_factor[-1]
            c_scan = motion.to_scan(np.asarray(centres_body[ns.id])[None])[0]
            nodules.append((ns, factor, c_scan, rng_k))
        centres = [c for ns, f, c, _ in nodules if f is not None]
        grid = _grid_for(size, centres, spacing=spacing_mm, n_slices=n_slices)
        rng_img = np.random.default_rng([seed, 15, si, sum(map(ord, name))])
        hu = chest.render(grid, rng_img, motion) if images else None

        def container(p, _m=motion):
            return anatomy.lung_inside(_m.to_body(p))

        truths = []
        for ns, factor, c_scan, rng_k in nodules:
            params = dict(ns.params)
            core_growth = params.pop("core_growth", None)
            base = make_nodule(
                ns.kind,
                ns.diameter_mm,
                (0.0, 0.0, 0.0),
                rng_k,
                nodule_id=ns.id,
                container=container if ns.kind == "juxtapleural" else None,
                plane_normal=(0.0, -anatomy.OBLIQUE_SLOPE, 1.0) if ns.kind == "perifissural" else None,
                labels=ns.labels,
                **params,
            )
            if factor is None:
                truths.append(None)
                continue
            scale = factor ** (1 / 3)
            nod = base.transformed(c_scan, motion.rotation, scale, container=container)
            if core_growth is not None:
                comps = list(nod.components)
                for k, comp in enumerate(comps):
                    if comp.role == "solid-core":
                        g = core_growth[si] ** (1 / 3)
                        comps[k] = replace(comp, shape=comp.shape.scaled(g))
                nod = replace(nod, components=tuple(comps))
            if images:
                paint_nodule(hu, grid, nod)
            t = nodule_truth(nod)
            cbody = motion.to_body(np.asarray(t["centroid_lps_mm"])[None])[0]
            lobe = anatomy.lobe_of(cbody)
            z0, dz = grid.origin_lps_mm[2], grid.spacing_mm[2]
            t["seed_lps_mm"] = jittered_seed(
                nod,
                t["centroid_lps_mm"],
                np.random.default_rng([seed, 16, si, int(ns.id[1:])]),
                jitter_fraction=jitter_fraction,
                snap_z=lambda z: z0 + round((z - z0) / dz) * dz,
            )
            t.update(
                {
                    "id": ns.id,
                    "tracking_uid": make_uid(name, seed, "nodule", ns.id),
                    "lobe": lobe,
                    "upper_lobe": lobe in ("RUL", "LUL"),
                    "centroid_body_mm": [float(v) for v in cbody],
                    "volume_factor": factor,
                }
            )
            truths.append(t)
        if images:
            noisy, blurred = acquire(
                hu,
                grid.spacing_mm,
                rng_img,
                noise_sd_hu=noise,
                slice_thickness_mm=slice_thickness_mm,
                keep_clean=keep_clean,
            )
            uniform = _uniform_region(hu, grid, motion)
        else:
            noisy, blurred, uniform = np.zeros((0, 0, 0), dtype=np.float32), None, None
        truth_nodules_by_study.append(truths)
        study_uid = make_uid(name, seed, size, si, "study")
        present = [t for t in truths if t is not None]
        studies.append(
            PhantomStudy(
                hu=noisy,
                origin_lps_mm=grid.origin_lps_mm,
                spacing_mm=grid.spacing_mm,
                study_date=date,
                patient={**patient, "age_years": age_at(patient["birth_date"], date)},
                study_uid=study_uid,
                series_uid=make_uid(name, seed, size, si, "series"),
                frame_of_reference_uid=make_uid(name, seed, size, si, "for"),
                nodules=present,
                truth={
                    "case": name,
                    "seed": seed,
                    "size": size,
                    "study_index": si,
                    "study_uid": study_uid,
                    "study_date": date.isoformat(),
                    "shape_kji": list(grid.shape),
                    "origin_lps_mm": list(grid.origin_lps_mm),
                    "spacing_mm": list(grid.spacing_mm),
                    "slice_thickness_mm": slice_thickness_mm or grid.spacing_mm[2],
                    "noise_sd_hu": noise,
                    "lung_hu": anatomy.LUNG_HU,
                    "soft_tissue_hu": anatomy.SOFT_HU,
                    "motion": motion.as_truth(),
                    "images": images,
                    "uniform_regions": [u for u in [uniform] if u],
                    "exam_labels": spec.exam_labels[si] if si < len(spec.exam_labels) else [],
                    "nodules": present,
                },
                slice_thickness_mm=slice_thickness_mm or grid.spacing_mm[2],
                noise_sd_hu=noise,
                case=name,
                seed=seed,
                study_index=si,
                exam_labels=list(spec.exam_labels[si]) if si < len(spec.exam_labels) else [],
                clean_hu=blurred,
            )
        )
    _add_growth_truth(studies, truth_nodules_by_study)
    return studies


_UNIFORM_CANDIDATES_BODY = [
    (0.0, -35.0, 40.0),
    (0.0, -35.0, 60.0),
    (15.0, -30.0, -62.0),
    (-70.0, 0.0, -150.0),
    (0.0, -35.0, 20.0),
]


def _uniform_region(clean_hu: np.ndarray, grid: Grid, motion: Motion) -> dict | None:
    """A soft-tissue box whose noise-free value is exactly uniform (for noise measurements)."""
    for c in _UNIFORM_CANDIDATES_BODY:
        k, j, i = np.rint(grid.lps_to_voxel(motion.to_scan(np.asarray(c)[None])[0])).astype(int)
        lo = np.array([k - 4, j - 12, i - 12])
        hi = np.array([k + 5, j + 13, i + 13])
        if np.any(lo < 0) or np.any(hi > np.array(clean_hu.shape)):
            continue
        region = clean_hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        if np.all(np.abs(region - anatomy.SOFT_HU) < 0.5):
            return {
                "hu": anatomy.SOFT_HU,
                "index_box_kji": [[int(k - 2), int(k + 3)], [int(j - 7), int(j + 8)], [int(i - 7), int(i + 8)]],
            }
    return find_uniform_region(clean_hu, anatomy.SOFT_HU)


def _add_growth_truth(studies: list[PhantomStudy], by_study: list[list[dict | None]]) -> None:
    """Per nodule and study: volume at every time point, change and VDT versus each earlier study."""
    if len(studies) < 2:
        return
    for si, truths in enumerate(by_study):
        for ni, t in enumerate(truths):
            if t is None:
                continue
            history = []
            for pj in range(si):
                prior = by_study[pj][ni]
                days = (studies[si].study_date - studies[pj].study_date).days
                if prior is None:
                    history.append(
                        {
                            "study_uid": studies[pj].study_uid,
                            "study_date": studies[pj].study_date.isoformat(),
                            "present": False,
                        }
                    )
                    continue
                v0, v1 = prior["volume_mm3"], t["volume_mm3"]
                ratio = v1 / v0
                vdt = days * math.log(2) / math.log(ratio) if abs(ratio - 1) > 1e-9 else None
                history.append(
                    {
                        "study_uid": studies[pj].study_uid,
                        "study_date": studies[pj].study_date.isoformat(),
                        "present": True,
                        "days_between": days,
                        "prior_volume_mm3": v0,
                        "volume_change_pct": 100.0 * (ratio - 1),
                        "vdt_days": vdt,
                        "prior_centroid_lps_mm": prior["centroid_lps_mm"],
                    }
                )
            status = "baseline" if si == 0 else ("new" if all(not h["present"] for h in history) else None)
            if status is None:
                last = [h for h in history if h["present"]][-1]
                pct = last["volume_change_pct"]
                status = "growing" if pct > 25 else ("decreased" if pct < -25 else "stable")
            t["growth"] = {"status": status, "priors": history}
        # nodules that were present before and are gone now
        gone = []
        for ni, t in enumerate(truths):
            if t is None and any(by_study[pj][ni] is not None for pj in range(si)):
                prev = [by_study[pj][ni] for pj in range(si) if by_study[pj][ni] is not None][-1]
                gone.append({"id": prev["id"], "tracking_uid": prev["tracking_uid"], "status": "resolved"})
        studies[si].truth["resolved_nodules"] = gone
