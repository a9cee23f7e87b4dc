"""The synthetic chest: body, fat, ribs, spine, mediastinum, heart, lungs with lobes, airways and vessels.

Everything is defined analytically in a *body frame* (LPS mm, origin near the
carina).  A study's scanner frame maps to the body frame through ``point_map``
(rigid repositioning + breathing deformation, see :mod:`test_images.motion`).
Rendering composites the structures in order with partial volume by 4x
supersampling of the voxels at each structure's surface.  Pure computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from test_images.render import Grid, fraction_inside, paint
from test_images.scene import paint_segment

AIR_HU = -1000.0
FAT_HU = -100.0
SOFT_HU = 45.0
BONE_HU = 650.0
SPINE_HU = 450.0
LUNG_HU = -850.0
BLOOD_HU = 40.0
FISSURE_HU = -150.0

BODY_AXES = (168.0, 118.0)
INNER_AXES = (153.0, 104.0)
RIB_AXES = (147.0, 99.0)
LUNG_CX = 80.0
LUNG_AXES = (60.0, 80.0)
LUNG_TOP = 105.0
LUNG_MID = -20.0
DOME_APEX = {"R": -95.0, "L": -105.0}
HEART_C = (15.0, -30.0, -62.0)
HEART_AXES = (62.0, 48.0, 52.0)
AORTA = ((18.0, 52.0), 12.0, (-160.0, 45.0))
SPINE_C = (0.0, 78.0)
OBLIQUE_SLOPE = 0.93  # dz/dy of the oblique fissures (posterior-superior to anterior-inferior)
OBLIQUE_Z0 = {"R": -25.0, "L": -30.0}
HORIZONTAL_Z = -15.0


def _xyz(p):
    return p[..., 0], p[..., 1], p[..., 2]


def _lung_test(p: np.ndarray, side: np.ndarray | str) -> np.ndarray:
    x, y, z = _xyz(p)
    if isinstance(side, str):
        right = np.full(x.shape, side == "R")
    else:
        right = side
    cx = np.where(right, -LUNG_CX, LUNG_CX)
    apex = np.where(right, DOME_APEX["R"], DOME_APEX["L"])
    ax, ay = LUNG_AXES
    zr = np.clip((z - LUNG_MID) * (1.0 / (LUNG_TOP - LUNG_MID)), 0.0, None)
    q = ((x - cx) * (1.0 / ax)) ** 2 + (y * (1.0 / ay)) ** 2
    ins = (q < 1.0 - zr * zr) & (z > apex - 45.0 * q)
    # carve the heart (+3 mm) and the descending aorta (+3 mm), only where needed
    idx = np.nonzero(ins)
    if idx[0].size:
        xi, yi, zi = x[idx], y[idx], z[idx]
        hx, hy, hz = HEART_C
        ha, hb, hc = (v + 3.0 for v in HEART_AXES)
        keep = ((xi - hx) / ha) ** 2 + ((yi - hy) / hb) ** 2 + ((zi - hz) / hc) ** 2 > 1.0
        (axc, ayc), ar, _ = AORTA
        keep &= (xi - axc) ** 2 + (yi - ayc) ** 2 > (ar + 3.0) ** 2
        ins[idx] = keep
    return ins


def lung_side_inside(p: np.ndarray, side: str) -> np.ndarray:
    """Inside test of one lung (side 'R' at -x, 'L' at +x) in the body frame."""
    return _lung_test(p, side)


def lung_inside(p: np.ndarray) -> np.ndarray:
    """Inside either lung (body frame); the lungs never cross the midline."""
    return _lung_test(p, p[..., 0] < 0)


def lobe_of(p) -> str | None:
    """Lobe ('RUL', 'RML', 'RLL', 'LUL', 'LLL') of a body-frame point, None outside the lungs."""
    p = np.asarray(p, dtype=float)
    if lung_side_inside(p[None], "R")[0]:
        if p[2] < OBLIQUE_Z0["R"] + OBLIQUE_SLOPE * p[1]:
            return "RLL"
        return "RUL" if p[2] > HORIZONTAL_Z else "RML"
    if lung_side_inside(p[None], "L")[0]:
        return "LLL" if p[2] < OBLIQUE_Z0["L"] + OBLIQUE_SLOPE * p[1] else "LUL"
    return None


def pleural_distance_mm(p, side: str, direction, *, refine: bool = True) -> float:
    """Distance from ``p`` along ``direction`` to the first point outside the lung.

    A 0.25 mm march, refined by bisection to ~1e-8 mm when ``refine`` (else exact to 0.25 mm).
    """
    d = np.asarray(direction, dtype=float)
    d /= np.linalg.norm(d)
    p = np.asarray(p, dtype=float)
    t = np.arange(0.0, 200.0, 0.25)
    ins = lung_side_inside(p[None] + t[:, None] * d[None], side)
    out = np.nonzero(~ins)[0]
    if not out.size:
        return float("inf")
    if out[0] == 0:
        return 0.0
    lo, hi = float(t[out[0] - 1]), float(t[out[0]])
    for _ in range(30 if refine else 0):
        mid = 0.5 * (lo + hi)
        if lung_side_inside((p + mid * d)[None], side)[0]:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class Segment:
    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    r0: float
    r1: float


def vessel_tree(rng: np.random.Generator, *, min_radius_mm: float = 0.5) -> list[Segment]:
    """Branching pulmonary vessel trees from each hilum: tapering cylinders, diameter 6 mm down to 1 mm."""
    segs: list[Segment] = []
    roots = []
    for side, sx in (("R", -1.0), ("L", 1.0)):
        hilum = np.array([sx * 38.0, 5.0, -5.0])
        for d in (
            [sx * 0.7, -0.5, 0.6],
            [sx * 0.8, 0.2, -0.5],
            [sx * 0.6, 0.6, 0.1],
            [sx * 0.6, -0.7, -0.3],
            [sx * 0.5, 0.3, 0.8],
            [sx * 0.5, 0.5, -0.8],
            [sx * 0.9, -0.2, 0.1],
        ):
            roots.append((side, hilum, np.asarray(d) / np.linalg.norm(d), 3.0))

    def grow(side, p, d, r, depth):
        if r < min_radius_mm or depth > 12:
            return
        length = float(np.clip(r * rng.uniform(10.0, 15.0), 7.0, 45.0))
        r_end = r * 0.9
        q = p + d * length
        tries = 0
        while not (lung_side_inside(q[None], side)[0]) and tries < 3:
            length *= 0.5
            q = p + d * length
            tries += 1
        if tries == 3 and not lung_side_inside(q[None], side)[0]:
            return
        segs.append(Segment(tuple(p), tuple(q), r, r_end))
        for _ in range(2):
            # child direction: rotate by 20-40 degrees about a random perpendicular axis
            perp = np.cross(d, rng.standard_normal(3))
            perp /= np.linalg.norm(perp)
            ang = rng.uniform(0.35, 0.7)
            nd = d * np.cos(ang) + perp * np.sin(ang)
            grow(side, q, nd / np.linalg.norm(nd), r_end * rng.uniform(0.74, 0.9), depth + 1)

    for side, hilum, d, r in roots:
        grow(side, hilum, d, r, 0)
    return segs


def airway_segments() -> list[Segment]:
    """Trachea and main/lobar bronchi (outer radius; the lumen is painted 1.5 mm thinner)."""
    c = (0.0, 15.0, 35.0)
    return [
        Segment((0.0, 12.0, 125.0), c, 9.5, 9.0),
        Segment(c, (-32.0, 18.0, 15.0), 7.5, 6.5),
        Segment(c, (30.0, 20.0, 8.0), 7.0, 6.0),
        Segment((-32.0, 18.0, 15.0), (-55.0, 10.0, 45.0), 5.0, 3.5),
        Segment((-32.0, 18.0, 15.0), (-50.0, 25.0, -25.0), 5.5, 4.0),
        Segment((30.0, 20.0, 8.0), (52.0, 12.0, 40.0), 5.0, 3.5),
        Segment((30.0, 20.0, 8.0), (50.0, 28.0, -30.0), 5.0, 3.5),
    ]


def _ellipse_cyl(axes, centre=(0.0, 0.0)):
    a, b = axes

    def inside(p):
        return ((p[..., 0] - centre[0]) / a) ** 2 + ((p[..., 1] - centre[1]) / b) ** 2 < 1.0

    return inside


def _ribs_inside(p):
    x, y, z = _xyz(p)
    rn = np.sqrt((x * (1.0 / RIB_AXES[0])) ** 2 + (y * (1.0 / RIB_AXES[1])) ** 2)
    ins = np.abs((rn - 1.0) * 120.0) < 4.5
    idx = np.nonzero(ins)
    if idx[0].size:
        xi, yi, zi = x[idx], y[idx], z[idx]
        zr = zi - 0.4 * yi  # ribs descend anteriorly
        zm = np.mod(zr - 5.0, 26.0) - 13.0
        anterior_gap = (yi < -60) & (np.abs(xi) < 35)  # sternum / costal cartilage region: no rib bone
        ins[idx] = (np.abs(zm) < 5.0) & (zr < 115.0) & (zr > -150.0) & ~anterior_gap
    return ins


def _spine_inside(p):
    x, y, z = _xyz(p)
    body = x**2 + (y - SPINE_C[1]) ** 2 < 17.0**2
    post = (x**2 + (y - SPINE_C[1] - 27.0) ** 2 < 13.0**2) & ~(x**2 + (y - SPINE_C[1] - 27.0) ** 2 < 8.0**2)
    disc = np.abs(np.mod(z, 27.0) - 13.5) < 2.5
    return (body & ~disc) | post


def _mediastinum_inside(p):
    """Mediastinal fat between the lungs (the lungs, heart and vessels are painted over it)."""
    x, y, z = _xyz(p)
    return (
        ((x / 38.0) ** 2 + ((y + 5.0) / 68.0) ** 2 < 1.0)
        & (z > -130.0)
        & (z < 90.0)
        & ~(x**2 + (y - SPINE_C[1]) ** 2 < 22.0**2)
    )


def _heart_inside(p, grow: float = 0.0):
    x, y, z = _xyz(p)
    a, b, c = (v + grow for v in HEART_AXES)
    return ((x - HEART_C[0]) / a) ** 2 + ((y - HEART_C[1]) / b) ** 2 + ((z - HEART_C[2]) / c) ** 2 < 1.0


def _aorta_inside(p):
    x, y, z = _xyz(p)
    (ax, ay), r, (z0, z1) = AORTA
    return ((x - ax) ** 2 + (y - ay) ** 2 < r * r) & (z > z0) & (z < z1)


@dataclass
class Chest:
    """One patient's chest anatomy (vessel tree from ``rng``)."""

    vessels: list[Segment]
    texture_hu: float = 12.0

    @classmethod
    def create(cls, rng: np.random.Generator, *, texture_hu: float = 12.0) -> Chest:
        return cls(vessel_tree(rng), texture_hu)

    def render(self, grid: Grid, rng: np.random.Generator, motion=None, *, slab: int = 24) -> np.ndarray:
        """Noise-free HU volume of the chest on ``grid``; ``motion`` maps the scanner frame to the body frame."""
        from test_images.single import smooth_texture

        point_map = None if motion is None or motion.is_identity else motion.to_body
        hu = np.full(grid.shape, AIR_HU, dtype=np.float32)
        texture = smooth_texture(grid.shape, rng, self.texture_hu)
        nz, ny, nx = grid.shape
        big = 1e4
        hc, ha = np.asarray(HEART_C), np.asarray(HEART_AXES) + 4.0
        (axc, ayc), ar, (az0, az1) = AORTA
        structures = [  # (inside test, HU, body-frame bounding box)
            (_ellipse_cyl(BODY_AXES), FAT_HU, None),
            (_ellipse_cyl(INNER_AXES), SOFT_HU, None),
            (_ribs_inside, BONE_HU, None),
            (_mediastinum_inside, FAT_HU, ((-40.0, -75.0, -135.0), (40.0, 70.0, 95.0))),
            (_spine_inside, SPINE_HU, ((-20.0, SPINE_C[1] - 20.0, -big), (20.0, SPINE_C[1] + 43.0, big))),
            (lambda p: _heart_inside(p, 4.0), FAT_HU, (tuple(hc - ha), tuple(hc + ha))),
            (_heart_inside, BLOOD_HU, (tuple(hc - ha), tuple(hc + ha))),
            (_aorta_inside, BLOOD_HU, ((axc - ar, ayc - ar, az0), (axc + ar, ayc + ar, az1))),
        ]

        def scan_box(bb, k0, k1):
            full = (slice(k0, k1), slice(0, ny), slice(0, nx))
            if bb is None:
                return full
            lo, hi = np.asarray(bb[0], dtype=float), np.asarray(bb[1], dtype=float)
            lo = np.maximum(lo, -400.0)
            hi = np.minimum(hi, 400.0)
            corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
            if point_map is not None:
                corners = motion.to_scan(corners)
            margin = 0.0 if point_map is None else 6.0
            b = grid.index_box(corners.min(axis=0) - margin, corners.max(axis=0) + margin)
            if b is None:
                return None
            ks, ke = max(b[0].start, k0), min(b[0].stop, k1)
            if ke <= ks:
                return None
            return (slice(ks, ke), b[1], b[2])

        n_r = np.array([0.0, -OBLIQUE_SLOPE, 1.0]) / np.hypot(1.0, OBLIQUE_SLOPE)
        fissures = [  # thin sheets (0.4 mm), each restricted to its lung (sdf of the intersection, approx.)
            lambda p: np.maximum(np.abs((p[..., 2] - OBLIQUE_Z0["R"]) * n_r[2] + p[..., 1] * n_r[1]) - 0.2, p[..., 0]),
            lambda p: np.maximum(np.abs((p[..., 2] - OBLIQUE_Z0["L"]) * n_r[2] + p[..., 1] * n_r[1]) - 0.2, -p[..., 0]),
            lambda p: np.maximum(
                np.maximum(
                    np.abs(p[..., 2] - HORIZONTAL_Z) - 0.2, (OBLIQUE_Z0["R"] + OBLIQUE_SLOPE * p[..., 1]) - p[..., 2]
                ),
                p[..., 0],
            ),
        ]
        cache: dict = {}
        for k0 in range(0, nz, slab):
            box = (slice(k0, min(k0 + slab, nz)), slice(0, ny), slice(0, nx))
            for inside, value, bb in structures:
                sbox = scan_box(bb, box[0].start, box[0].stop)
                if sbox is None:
                    continue
                frac = fraction_inside(grid, sbox, inside, point_map=point_map, cache=cache)
                paint(hu, sbox, frac, value)
            lung = fraction_inside(grid, box, lung_inside, point_map=point_map, cache=cache)
            paint(hu, box, lung, LUNG_HU + texture[box])
            inl = lung > 0
            if inl.any():
                idx = np.nonzero(inl)
                pts = grid.centres(box)[idx]
                pts_b = pts if point_map is None else point_map(pts)
                for sdf in fissures:
                    near = np.abs(sdf(pts_b)) < 1.5 * grid.half_diagonal_mm
                    if not near.any():
                        continue
                    from test_images.render import _subsample_offsets

                    off = _subsample_offsets(grid.spacing_mm, 4)
                    sub = pts[near][:, None, :] + off[None]
                    sub = sub if point_map is None else point_map(sub)
                    f = (sdf(sub) < 0).mean(axis=1).astype(np.float32) * lung[idx][near]
                    sel = tuple(a[near] for a in idx)
                    region = hu[box]
                    region[sel] += f * (FISSURE_HU - region[sel])

        airways = airway_segments()
        segs = (
            [(s, 0.0, SOFT_HU) for s in airways]
            + [(s, 1.5, AIR_HU) for s in airways]
            + [(s, 0.0, BLOOD_HU) for s in self.vessels]
        )
        ends_body = np.array([[s.p0, s.p1] for s, _, _ in segs], dtype=float)  # (n, 2, 3)
        ends_scan = ends_body if point_map is None else motion.to_scan(ends_body)  # one batched inversion
        for (s, dr, value), (p0, p1) in zip(segs, ends_scan):
            paint_segment(
                hu,
                grid,
                p0,
                p1,
                s.r0 - dr,
                s.r1 - dr,
                value,
                point_map=point_map,
                margin_mm=2.0,
                sdf_points=(s.p0, s.p1),
            )
        return hu
