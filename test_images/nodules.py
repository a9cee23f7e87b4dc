"""Nodule kinds as analytic components, and their ground truth.

A nodule is an *outer* star-shaped solid (its extent defines the nodule volume)
plus optional inner components painted over it: the solid core of a part-solid
nodule, a calcification, a fat region.  ``make_nodule`` builds the components
of a kind; ``nodule_truth`` measures them analytically (see
:mod:`test_images.shapes`).  Pure computation, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from test_images.shapes import (
    ContainerFn,
    StarShape,
    fibonacci_directions,
    max_axial_diameter,
    rotation_matrix,
    section_diameters,
    volume_and_centroid,
)

KINDS = (
    "solid",
    "lobulated",
    "spiculated",
    "juxtavascular",
    "juxtapleural",
    "perifissural",
    "ggn",
    "part-solid",
    "calcified",
    "fat",
)

COMPOSITION = {
    "ggn": "non-solid",
    "part-solid": "part-solid",
}

# DESIGN §6 reader labels a radiologist would type for each kind
DEFAULT_LABELS = {
    "solid": [],
    "lobulated": [],
    "spiculated": ["spiculated"],
    "juxtavascular": [],
    "juxtapleural": ["juxtapleural"],
    "perifissural": ["pfn"],
    "ggn": ["ggn"],
    "part-solid": ["part-solid"],
    "calcified": ["calcified"],
    "fat": ["fat"],
}

ATTACHMENT = {"juxtavascular": "juxtavascular", "juxtapleural": "juxtapleural", "perifissural": "perifissural"}


@dataclass(frozen=True)
class Component:
    """One analytic solid of a nodule and the attenuation it is painted with."""

    shape: StarShape
    hu: float
    role: str  # "outer" | "solid-core" | "calcification" | "fat"


@dataclass(frozen=True)
class Nodule:
    """A nodule: components (the first is the outer extent), kind, labels, attached vessels."""

    id: str
    kind: str
    components: tuple[Component, ...]
    labels: tuple[str, ...] = ()
    # vessels (capsules) belonging to the juxtavascular setting: ((p0, p1, radius_mm), ...)
    vessels: tuple[tuple[tuple[float, float, float], tuple[float, float, float], float], ...] = ()
    params: dict = field(default_factory=dict)

    @property
    def outer(self) -> StarShape:
        return self.components[0].shape

    @property
    def composition(self) -> str:
        return COMPOSITION.get(self.kind, "solid")

    @property
    def attachment(self) -> str:
        return ATTACHMENT.get(self.kind, "free")

    def transformed(
        self, centre_lps_mm, rotation: np.ndarray, scale: float = 1.0, container: ContainerFn | None = None
    ) -> Nodule:
        """The nodule moved to ``centre_lps_mm``, rotated by ``rotation`` (LPS) and scaled."""
        c0 = np.asarray(self.outer.centre_lps_mm)
        comps = []
        for comp in self.components:
            off = np.asarray(comp.shape.centre_lps_mm) - c0
            new_c = np.asarray(centre_lps_mm) + rotation @ (off * scale)
            s = comp.shape.scaled(scale).moved(new_c, rotation)
            s = replace(s, container=container if comp.shape.container is not None else None)
            comps.append(Component(s, comp.hu, comp.role))
        vessels = tuple(
            (
                tuple(np.asarray(centre_lps_mm) + rotation @ (np.asarray(p0) - c0)),
                tuple(np.asarray(centre_lps_mm) + rotation @ (np.asarray(p1) - c0)),
                r,
            )
            for p0, p1, r in self.vessels
        )
        return Nodule(self.id, self.kind, tuple(comps), self.labels, vessels, dict(self.params))


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_nodule(
    kind: str,
    diameter_mm: float,
    centre_lps_mm,
    rng: np.random.Generator,
    *,
    nodule_id: str = "N1",
    hu: float | None = None,
    container: ContainerFn | None = None,
    elongation: float = 1.0,
    core_diameter_mm: float | None = None,
    orientation_rad: tuple[float, float, float] | None = None,
    vessel_radius_mm: float | None = None,
    n_vessels: int = 1,
    plane_normal: tuple[float, float, float] | None = None,
    calcification: str = "central",
    labels: list[str] | None = None,
) -> Nodule:
    """Components of a nodule of ``kind`` with nominal ``diameter_mm`` centred at ``centre_lps_mm``.

    ``diameter_mm`` is the diameter of the base ellipsoid's equivalent sphere;
    the exact truth (volume, axes) comes from :func:`nodule_truth`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown nodule kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not 1.0 <= diameter_mm <= 60.0:
        raise ValueError(f"diameter_mm={diameter_mm} outside the supported 1-60 mm")
    c = tuple(float(v) for v in centre_lps_mm)
    r = diameter_mm / 2.0
    angles = orientation_rad if orientation_rad is not None else tuple(rng.uniform(0, np.pi, 3))
    rot = rotation_matrix(angles)
    # ellipsoid semi-axes with product r^3, ratio (elongation, 1, 1/elongation**0.5)
    e = float(elongation)
    a = r * e ** (1 / 2)
    b = r
    cc = r**3 / (a * b)
    semi = (a, b, cc)
    comps: list[Component] = []
    vessels = []
    solid_hu = hu if hu is not None else float(rng.uniform(35, 70))

    if kind in ("solid", "juxtavascular", "juxtapleural", "calcified", "fat"):
        shape = StarShape(c, semi, rot, container=container if kind == "juxtapleural" else None)
        comps.append(Component(shape, solid_hu, "outer"))
    elif kind == "lobulated":
        dirs = _random_unit(rng, 5)
        lobes = tuple((tuple(d), float(rng.uniform(0.12, 0.22)), float(rng.uniform(0.45, 0.7))) for d in dirs)
        base = tuple(v * 0.9 for v in semi)
        comps.append(Component(StarShape(c, base, rot, lobes=lobes), solid_hu, "outer"))
    elif kind == "spiculated":
        dirs = fibonacci_directions(9) @ rotation_matrix(tuple(rng.uniform(0, np.pi, 3))).T
        spic = tuple((tuple(d), float(r * rng.uniform(0.5, 1.0)), float(rng.uniform(0.14, 0.22))) for d in dirs)
        lobes = tuple((tuple(d), float(rng.uniform(0.05, 0.12)), 0.6) for d in _random_unit(rng, 3))
        comps.append(
            Component(StarShape(c, tuple(v * 0.9 for v in semi), rot, lobes=lobes, spicules=spic), solid_hu, "outer")
        )
    elif kind == "perifissural":
        n = np.asarray(plane_normal if plane_normal is not None else (0.0, -0.6, 0.8), dtype=float)
        n /= np.linalg.norm(n)
        # local z along the fissure normal: a lentiform (flattened) nodule lying in the fissure
        t1 = np.cross(n, [1.0, 0.0, 0.0])
        if np.linalg.norm(t1) < 1e-6:
            t1 = np.cross(n, [0.0, 1.0, 0.0])
        t1 /= np.linalg.norm(t1)
        t2 = np.cross(n, t1)
        rot = np.stack([t1, t2, n], axis=1)
        flat = 0.45
        semi = (r / flat ** (1 / 3) * 1.15, r / flat ** (1 / 3) / 1.15, r * flat ** (2 / 3))
        comps.append(Component(StarShape(c, semi, rot), solid_hu, "outer"))
    elif kind == "ggn":
        ggn_hu = hu if hu is not None else float(rng.uniform(-680, -520))
        lobes = tuple((tuple(d), float(rng.uniform(0.04, 0.1)), 0.7) for d in _random_unit(rng, 3))
        comps.append(Component(StarShape(c, semi, rot, lobes=lobes), ggn_hu, "outer"))
    elif kind == "part-solid":
        ggn_hu = hu if hu is not None else float(rng.uniform(-680, -540))
        comps.append(Component(StarShape(c, semi, rot), ggn_hu, "outer"))
        core_d = core_diameter_mm if core_diameter_mm is not None else diameter_mm * 0.4
        if core_d >= 0.8 * min(semi) * 2:
            raise ValueError(f"core_diameter_mm={core_d} does not fit inside a {diameter_mm} mm part-solid nodule")
        off = _random_unit(rng, 1)[0] * (min(semi) - core_d / 2) * 0.3
        comps.append(
            Component(
                StarShape(tuple(np.asarray(c) + off), (core_d / 2,) * 3, rot), float(rng.uniform(20, 50)), "solid-core"
            )
        )
    if kind == "calcified":
        if calcification == "complete":
            comps[0] = Component(comps[0].shape, float(rng.uniform(350, 600)), "outer")
            comps.append(Component(comps[0].shape, comps[0].hu, "calcification"))
        else:
            comps.append(
                Component(StarShape(c, (0.5 * min(semi),) * 3, rot), float(rng.uniform(400, 700)), "calcification")
            )
    if kind == "fat":
        comps.append(Component(StarShape(c, tuple(0.55 * v for v in semi), rot), float(rng.uniform(-110, -60)), "fat"))
    if kind == "juxtavascular":
        vr = vessel_radius_mm if vessel_radius_mm is not None else float(rng.uniform(0.6, 1.4))
        for v in range(n_vessels):
            d = _random_unit(rng, 1)[0]
            # pass through (first vessel) or touch (second) the nodule surface
            perp = np.cross(d, _random_unit(rng, 1)[0])
            perp /= np.linalg.norm(perp)
            offset = 0.3 * r if v == 0 else r + 0.5 * vr
            mid = np.asarray(c) + perp * offset
            L = r + 18.0
            vessels.append((tuple(mid - d * L), tuple(mid + d * L), vr))
    lab = tuple(labels) if labels is not None else tuple(DEFAULT_LABELS[kind])
    return Nodule(
        nodule_id,
        kind,
        tuple(comps),
        lab,
        tuple(vessels),
        {"nominal_diameter_mm": diameter_mm, "elongation": elongation},
    )


def _contains_fn(shape: StarShape):
    return shape.contains


def _is_plain_ellipsoid(shape: StarShape) -> bool:
    return not shape.lobes and not shape.spicules and shape.container is None


def ellipsoid_sections(shape: StarShape) -> dict[str, dict[str, float]]:
    """Exact long/short axes of the central axial, coronal and sagittal sections of an ellipsoid.

    The section of x^T A x <= 1 by the plane spanned by unit vectors (e1, e2)
    is the ellipse with matrix B = E^T A E; its axes are 2 / sqrt(eig(B)).
    """
    a = np.asarray(shape.semi_axes_mm, dtype=float)
    amat = shape.rotation @ np.diag(1.0 / a**2) @ shape.rotation.T
    eye = np.eye(3)
    out = {}
    for name, (i, j) in {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}.items():
        e = eye[:, [i, j]]
        lam = np.linalg.eigvalsh(e.T @ amat @ e)
        out[name] = {"long_axis_mm": float(2 / np.sqrt(lam.min())), "short_axis_mm": float(2 / np.sqrt(lam.max()))}
    return out


def nodule_truth(nodule: Nodule) -> dict:
    """Analytic ground truth of ``nodule`` (volumes, diameters, centroid) as a JSON-able dict.

    Plain ellipsoids use closed forms (volume 4/3 pi abc, centroid = centre,
    section axes from the section ellipse; the largest axial section of an
    ellipsoid is the central one).  Other shapes use quadrature and fine 2-D
    sections of the analytic indicator (see :mod:`test_images.shapes`).
    """
    outer = nodule.outer
    if _is_plain_ellipsoid(outer):
        vol = float(4.0 / 3.0 * np.pi * np.prod(outer.semi_axes_mm))
        centroid = np.asarray(outer.centre_lps_mm, dtype=float)
        planes = ellipsoid_sections(outer)
        max_ax = planes["axial"]["long_axis_mm"]
    else:
        vol, centroid = volume_and_centroid(outer)
        rmin, rmax = outer.radius_bounds_mm()
        off = float(np.linalg.norm(centroid - np.asarray(outer.centre_lps_mm)))
        extent = rmax + off + 0.2
        planes = section_diameters(outer.contains, centroid, extent)
        max_ax = max_axial_diameter(outer.contains, centroid, extent)
    best = max(planes, key=lambda k: (round(planes[k]["long_axis_mm"], 6), planes[k]["short_axis_mm"]))
    long_axis = planes[best]["long_axis_mm"]
    short_axis = planes[best]["short_axis_mm"]
    comp = nodule.composition
    solid_volume = vol
    solid_mean_d = (long_axis + short_axis) / 2
    if comp == "non-solid":
        solid_volume, solid_mean_d = 0.0, 0.0
    elif comp == "part-solid":
        core = next(c.shape for c in nodule.components if c.role == "solid-core")
        solid_volume, core_centroid = volume_and_centroid(core)
        if _is_plain_ellipsoid(core):
            cp = ellipsoid_sections(core)
        else:
            cmin, cmax = core.radius_bounds_mm()
            cp = section_diameters(core.contains, core_centroid, cmax + 0.2)
        cb = max(cp, key=lambda k: cp[k]["long_axis_mm"])
        solid_mean_d = (cp[cb]["long_axis_mm"] + cp[cb]["short_axis_mm"]) / 2
    hu_outer = nodule.components[0].hu
    comp_truth = []
    for c in nodule.components[1:]:
        v = (
            float(4.0 / 3.0 * np.pi * np.prod(c.shape.semi_axes_mm))
            if _is_plain_ellipsoid(c.shape)
            else volume_and_centroid(c.shape)[0]
        )
        comp_truth.append({"role": c.role, "hu": c.hu, "volume_mm3": v})
    return {
        "kind": nodule.kind,
        "composition": comp,
        "volume_mm3": vol,
        "solid_volume_mm3": solid_volume,
        "volume_equivalent_diameter_mm": float((6 * vol / np.pi) ** (1 / 3)),
        "mean_diameter_mm": (long_axis + short_axis) / 2,
        "long_axis_mm": long_axis,
        "short_axis_mm": short_axis,
        "measurement_plane": best,
        "axes_by_plane_mm": planes,
        "max_axial_diameter_mm": max_ax,
        "solid_mean_diameter_mm": solid_mean_d,
        "centroid_lps_mm": [float(v) for v in centroid],
        "attachment": nodule.attachment,
        "hu": hu_outer,
        "components": comp_truth,
        "labels": list(nodule.labels),
        "vessels": [{"p0_lps_mm": list(p0), "p1_lps_mm": list(p1), "radius_mm": r} for p0, p1, r in nodule.vessels],
    }


def jittered_seed(
    nodule: Nodule, centroid, rng: np.random.Generator, *, jitter_fraction: float = 0.3, snap_z: callable | None = None
) -> list[float]:
    """A reader's click: on the slice nearest the centroid, moved in-plane by up to ``jitter_fraction`` of the
    (smallest) radius, always inside the nodule.

    ``snap_z`` maps a z (mm) to the nearest slice position, since readers click on slices.
    """
    rmin, _ = nodule.outer.radius_bounds_mm()
    c = np.asarray(centroid, dtype=float).copy()
    if snap_z is not None:
        c[2] = snap_z(c[2])
    for _ in range(200):
        phi = rng.uniform(0, 2 * np.pi)
        p = c + np.array([np.cos(phi), np.sin(phi), 0.0]) * rng.uniform(0, jitter_fraction) * max(rmin, 0.5)
        if nodule.outer.contains(p[None, :])[0]:
            return [float(v) for v in p]
    return [float(v) for v in c]
