"""Volumetry accuracy and speed of :mod:`segmentation` on ``test_images`` phantoms.

For every nodule class and size, ``--shapes`` phantom nodules are rendered
(``test_images.render_single_nodule``); each is measured over ``--reps``
realisations that differ in noise (the generator's own scanner model: white
noise through the PSF, added to its noise-free blurred image) and in the
seed (moved up to 30 % of the radius from the centroid, on a slice), at
40 HU and 80 HU noise.  Printed per class/size/noise: failures ("no nodule
at seed"), measurements flagged "volumetry unreliable" (unrel), bias and p95 of the
absolute volume error (%), within-nodule CV (%), median absolute error of
the mean diameter (mm), solid-component bias (part-solid), composition /
calcification / fat correctness (%), median seconds per nodule, and whether
the issue's target is met (3 mm solid nodules, below the issue's table, are
there to show the flag).  The measurement is the production call
(:func:`segmentation.production.measure_at_seed`); ``bias%`` is the partial-volume volume
(``partial_volume_mm3``, the physical estimate) against the phantom's true volume, ``rc bias%`` the
SR's volume (``volume_mm3`` = ``readers_volume_mm3``, the radiologists' outline convention, calibrated
on real LIDC nodules) against the same truth: the two conventions differ by design (readers outline
the first pixel outside the nodule, so their volumes exceed the physical one, most on small nodules).  ``kind@2.5mm`` classes are rendered
on 2.5 mm slices (slice thickness 2.5 mm).  Time per nodule includes building the image and
the ROI extraction; wall and CPU seconds are both printed since the
machine may be shared.  Peak memory (max RSS) is printed at the end.

    python -m benchmarks.accuracy --json out.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

#: (kind, sizes mm); the full run; --quick uses the first and last size only
CLASSES: list[tuple[str, tuple[float, ...]]] = [
    ("solid", (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0)),
    ("juxtavascular", (6.0, 10.0, 15.0)),
    ("juxtapleural", (6.0, 10.0, 15.0)),
    ("ggn", (6.0, 10.0, 15.0, 25.0, 35.0)),
    ("part-solid", (8.0, 12.0, 20.0)),
    ("lobulated", (8.0, 15.0)),
    ("spiculated", (8.0, 15.0)),
    ("calcified", (6.0, 10.0)),
    ("fat", (8.0, 12.0)),
    ("perifissural", (6.0, 10.0)),
    # thick-slice diagnostic CT (LIDC: 40 % of the nodules): 2.5 mm slices, irregular margins, vessel stubs
    ("spiculated@2.5mm", (8.0, 15.0)),
    ("juxtavascular@2.5mm", (8.0, 15.0)),
    ("solid@2.5mm", (6.0, 10.0)),
]
#: "kind@Nmm": the kind on N mm slices (slice thickness = spacing)
THICK_SLICE_SUFFIX = "@"


def target(kind: str, size_mm: float) -> tuple[float | None, float | None, str]:
    """(max |bias| %, max CV %, text) of the issue's table for this class and size."""
    if THICK_SLICE_SUFFIX in kind:
        return 10.0, None, "|bias|<=10% (2.5 mm slices)"
    if kind == "solid":
        if size_mm < 4:  # below the table: partial volume; the measurement should say so (unrel)
            return None, None, "- (below the table)"
        if size_mm < 5:
            return 8.0, None, "|bias|<=8%"
        cv = 2.0 if size_mm >= 8 else 3.0
        return 3.0, cv, f"|bias|<=3%, CV<={cv:g}%"
    if kind in ("juxtavascular", "juxtapleural"):
        return 5.0, None, "|bias|<=5%"
    if kind in ("ggn", "part-solid"):
        return 8.0, None, "|bias|<=8% (solid <=10%)"
    if kind in ("lobulated", "spiculated"):
        return 10.0, None, "|bias|<=10%"
    return None, None, "-"


def noise_field(shape, spacing_mm, rng, sd_hu: float) -> np.ndarray:
    """A noise realisation from the generator's own scanner model (PSF-filtered white noise)."""
    from test_images.scene import acquire

    noisy, _ = acquire(np.zeros(shape, dtype=np.float32), spacing_mm, rng, noise_sd_hu=sd_hu, keep_clean=False)
    return noisy


def jittered_seed(study, truth, rng) -> tuple[float, float, float]:
    """The centroid moved up to 30 % of the equivalent radius, on a slice, inside the nodule."""
    c = np.array(truth["centroid_lps_mm"], dtype=float)
    r = 0.5 * truth["volume_equivalent_diameter_mm"]
    origin, spacing = np.array(study.origin_lps_mm), np.array(study.spacing_mm)
    clean = study.clean_hu
    lung = -850.0
    level = float(truth["hu"])
    for _ in range(50):
        d = rng.normal(size=3)
        p = c + d / np.linalg.norm(d) * rng.uniform(0, 0.3) * r
        p[2] = origin[2] + round((p[2] - origin[2]) / spacing[2]) * spacing[2]
        idx = np.round((p - origin) / spacing).astype(int)[::-1]
        if np.all(idx >= 0) and np.all(idx < clean.shape) and clean[tuple(idx)] > lung + 0.5 * (level - lung):
            return tuple(float(v) for v in p)
    return tuple(float(v) for v in truth["seed_lps_mm"])


def run_case(kind: str, size_mm: float, noise_hu: float, shapes: int, reps: int) -> dict:
    """Measure one class/size/noise cell; returns the statistics."""
    from segmentation.characterize import characterize
    from segmentation.io import image_from_array
    from segmentation.production import measure_at_seed
    from segmentation.types import NoNoduleAtSeed
    from test_images import render_single_nodule

    base_kind, _, slice_txt = kind.partition(THICK_SLICE_SUFFIX)
    render_options: dict = {}
    if slice_txt:
        slice_mm = float(slice_txt.removesuffix("mm"))
        render_options = {"spacing_mm": (0.7, 0.7, slice_mm), "slice_thickness_mm": slice_mm}
    rc_errors: list[float] = []

    errors, cvs, diam_err, solid_err, times, cpu_times = [], [], [], [], [], []
    comp_ok = calc_ok = fat_ok = n_char = failures = unreliable = 0
    for shape_seed in range(shapes):
        study = render_single_nodule(base_kind, size_mm, noise_sd_hu=0.0, seed=shape_seed, **render_options)
        truth = study.nodules[0]
        rng = np.random.default_rng([shape_seed, int(size_mm * 10), int(noise_hu)])
        vols = []
        for rep in range(reps):
            hu = study.clean_hu + noise_field(study.clean_hu.shape, study.spacing_mm, rng, noise_hu)
            seed = jittered_seed(study, truth, rng) if rep else tuple(truth["seed_lps_mm"])
            t0, c0 = time.perf_counter(), time.process_time()
            image = image_from_array(hu, study.origin_lps_mm, study.spacing_mm)
            try:
                m = measure_at_seed(image, seed)
            except NoNoduleAtSeed:
                failures += 1
                continue
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            # the physical estimate (partial volume) against the phantom's truth; the SR's volume, in the
            # radiologists' outline convention, next to it
            pv = m.partial_volume_mm3 if m.partial_volume_mm3 is not None else m.volume_mm3
            vols.append(pv)
            unreliable += m.quality.volumetry_unreliable
            errors.append(100.0 * (pv / truth["volume_mm3"] - 1.0))
            rc_errors.append(100.0 * (m.volume_mm3 / truth["volume_mm3"] - 1.0))
            diam_err.append(abs(m.mean_diameter_mm - truth["mean_diameter_mm"]))
            if truth["composition"] == "part-solid" and truth["solid_volume_mm3"] > 0:
                solid_err.append(100.0 * ((m.solid_volume_mm3 or 0.0) / truth["solid_volume_mm3"] - 1.0))
            if rep < 3:  # characterization: a few realisations per nodule
                c = characterize(image, m)
                n_char += 1
                comp_ok += c.composition is not None and c.composition.value == truth["composition"]
                calc_ok += c.benign_calcification is not None and c.benign_calcification.value == (
                    base_kind == "calcified"
                )
                fat_ok += c.fat is not None and c.fat.value == (base_kind == "fat")
        if len(vols) >= 2:
            cvs.append(100.0 * float(np.std(vols, ddof=1) / np.mean(vols)))
    err = np.array(errors) if errors else np.array([np.nan])
    bias_target, cv_target, text = target(kind, size_mm)
    bias = float(np.mean(err))
    cv = float(np.mean(cvs)) if cvs else float("nan")
    diam = float(np.median(diam_err)) if diam_err else float("nan")
    met = failures == 0
    if bias_target is not None:
        met &= abs(bias) <= bias_target
    if cv_target is not None:
        met &= cv <= cv_target
    if solid_err:
        met &= abs(float(np.mean(solid_err))) <= 10.0
    return {
        "kind": kind,
        "size_mm": size_mm,
        "noise_sd_hu": noise_hu,
        "n": len(errors),
        "failures": failures,
        "volumetry_unreliable": unreliable,
        "bias_pct": bias,
        "p95_abs_error_pct": float(np.percentile(np.abs(err), 95)),
        # the SR's volume (the readers' outline convention, NoduleMeasurement.volume_mm3) against the phantom truth
        "readers_convention_bias_pct": float(np.mean(rc_errors)) if rc_errors else None,
        "cv_pct": cv,
        "mean_diameter_median_abs_error_mm": diam,
        "solid_bias_pct": float(np.mean(solid_err)) if solid_err else None,
        "composition_correct_pct": 100.0 * comp_ok / n_char if n_char else None,
        "calcification_correct_pct": 100.0 * calc_ok / n_char if n_char else None,
        "fat_correct_pct": 100.0 * fat_ok / n_char if n_char else None,
        "median_seconds": float(np.median(times)) if times else float("nan"),
        "median_cpu_seconds": float(np.median(cpu_times)) if cpu_times else float("nan"),
        "target": text,
        "target_met": bool(met),
    }


def lung_mask_seconds(n_slices: int = 300) -> tuple[float, float]:
    """Wall and CPU seconds of :func:`segmentation.lungs.lung_mask` on a synthetic 512 x 512 x ``n_slices`` chest."""
    from segmentation.io import image_from_array
    from segmentation.lungs import lung_mask

    yy, xx = np.mgrid[0:512, 0:512]
    body = ((yy - 256) / 200.0) ** 2 + ((xx - 256) / 240.0) ** 2 <= 1
    lungs = (((yy - 250) / 150.0) ** 2 + ((xx - 150) / 80.0) ** 2 <= 1) | (
        ((yy - 250) / 150.0) ** 2 + ((xx - 362) / 80.0) ** 2 <= 1
    )
    slab = np.where(lungs, -850.0, np.where(body, 40.0, -1000.0)).astype(np.float32)
    rng = np.random.default_rng(0)
    hu = np.repeat(slab[None], n_slices, axis=0) + rng.normal(0, 30, (n_slices, 1, 1)).astype(np.float32)
    image = image_from_array(hu, (-180.0, -180.0, 0.0), (0.7, 0.7, 1.0))
    t0, c0 = time.perf_counter(), time.process_time()
    lung_mask(image)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="short run: 1 shape, 3 realisations, 2 sizes per class")
    parser.add_argument("--shapes", type=int, default=2, help="phantom nodules per class and size")
    parser.add_argument("--reps", type=int, default=10, help="noise x seed realisations per nodule")
    parser.add_argument("--noise", default="40,80", help="noise SDs (HU), comma separated")
    parser.add_argument("--kinds", default="", help="restrict to these kinds (comma separated)")
    args = parser.parse_args(argv)
    shapes, reps = (1, 3) if args.quick else (args.shapes, args.reps)
    noises = [float(v) for v in args.noise.split(",")]
    kinds = set(args.kinds.split(",")) if args.kinds else None
    rows = []
    header = (
        f"{'class':19s} {'mm':>5s} {'noise':>5s} {'n':>3s} {'fail':>4s} {'unrel':>5s} {'bias%':>7s} {'p95|e|%':>8s} "
        f"{'rc bias%':>8s} "
        f"{'CV%':>6s} {'dØ mm':>6s} {'solid%':>7s} {'comp%':>6s} {'calc%':>6s} {'fat%':>5s} "
        f"{'s/nod':>6s} {'cpu s':>6s}  target"
    )
    print(header)
    for kind, sizes in CLASSES:
        if kinds and kind not in kinds:
            continue
        if args.quick:
            sizes = tuple(sorted({sizes[0], sizes[-1]}))
        for size in sizes:
            for noise in noises:
                r = run_case(kind, size, noise, shapes, reps)
                rows.append(r)
                solid = f"{r['solid_bias_pct']:7.1f}" if r["solid_bias_pct"] is not None else f"{'-':>7s}"
                rc = f"{r['readers_convention_bias_pct']:.1f}" if r["readers_convention_bias_pct"] is not None else "-"
                print(
                    f"{kind:19s} {size:5.1f} {noise:5.0f} {r['n']:3d} {r['failures']:4d} {r['volumetry_unreliable']:5d} {r['bias_pct']:7.1f} "
                    f"{r['p95_abs_error_pct']:8.1f} {rc:>8s} {r['cv_pct']:6.2f} {r['mean_diameter_median_abs_error_mm']:6.2f} "
                    f"{solid} {r['composition_correct_pct'] or 0:6.0f} {r['calcification_correct_pct'] or 0:6.0f} "
                    f"{r['fat_correct_pct'] or 0:5.0f} {r['median_seconds']:6.3f} {r['median_cpu_seconds']:6.3f}  {r['target']}"
                    f" {'MET' if r['target_met'] else 'MISSED'}",
                    flush=True,
                )
    lung_s, lung_cpu = lung_mask_seconds()
    print(f"lung mask of a 512 x 512 x 300 series: {lung_s:.2f} s wall, {lung_cpu:.2f} s CPU (target < 2 s)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    all_times = [r["median_seconds"] for r in rows if np.isfinite(r["median_seconds"])]
    all_cpu = [r["median_cpu_seconds"] for r in rows if np.isfinite(r["median_cpu_seconds"])]
    below = [r for r in rows if r["target"].startswith("- (below")]  # shown for the flag, outside the table
    table = [r for r in rows if r not in below]
    diam = [r["mean_diameter_median_abs_error_mm"] for r in table]
    summary = {
        "median_seconds_per_nodule": float(np.median(all_times)) if all_times else None,
        "median_cpu_seconds_per_nodule": float(np.median(all_cpu)) if all_cpu else None,
        "peak_memory_mb": peak_mb,
        "lung_mask_seconds_512x512x300": lung_s,
        "lung_mask_cpu_seconds_512x512x300": lung_cpu,
        "cells": len(rows),
        "cells_target_met": sum(r["target_met"] for r in table),
        "cells_in_the_table": len(table),
        "mean_diameter_median_abs_error_mm": float(np.median(diam)) if diam else None,
        "composition_correct_pct": float(
            np.mean([r["composition_correct_pct"] for r in table if r["composition_correct_pct"] is not None])
        ),
        "calcification_correct_pct": float(
            np.mean([r["calcification_correct_pct"] for r in table if r["calcification_correct_pct"] is not None])
        ),
        "fat_correct_pct": float(np.mean([r["fat_correct_pct"] for r in table if r["fat_correct_pct"] is not None])),
    }
    print(
        f"\nmedian s/nodule {summary['median_seconds_per_nodule']:.3f} wall, {summary['median_cpu_seconds_per_nodule']:.3f} CPU "
        f"(target <= 0.2; median of the cells' medians); peak memory {peak_mb:.0f} MB; "
        f"mean-diameter median |error| {summary['mean_diameter_median_abs_error_mm']:.2f} mm (target <= 0.3); "
        f"composition {summary['composition_correct_pct']:.0f} %, calcification {summary['calcification_correct_pct']:.0f} %, "
        f"fat {summary['fat_correct_pct']:.0f} % correct (target >= 95); cells meeting target {summary['cells_target_met']}/{len(table)}"
        + (
            "; below the issue's table (not in these figures): "
            + ", ".join(
                f"{r['kind']} {r['size_mm']:g} mm at {r['noise_sd_hu']:g} HU flagged unreliable in"
                f" {r['volumetry_unreliable']}/{r['n']}"
                for r in below
            )
            if below
            else ""
        )
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"rows": rows, "summary": summary, "quick": args.quick, "shapes": shapes, "reps": reps}, fh, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
