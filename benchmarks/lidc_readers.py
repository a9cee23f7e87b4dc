"""Our segmentation of the LIDC-IDRI-0001 nodule against the four readers' outlines.

    python -m benchmarks.lidc_readers [--data /work/shared/realdata/LIDC-IDRI-0001]

Rasterises each reader's outlines from the LIDC XML on the CT grid and prints,
per reader: the filled outline volume (outline pixels included), the interior
(outline pixels excluded), their mean, and the reference volume of
``reference.json`` (computed by pylidc).  The reference equals the mean: the
readers outlined the first pixel outside the nodule and the planimetric
polygon through those pixel centres takes half of each outline pixel.

Then our segmentation: its partial-volume volume (what the SR reports), its
mask, and its mask measured in the readers' convention (plus half of its
in-plane outline ring), with the slice-by-slice areas next to the readers'.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT = Path("/work/shared/realdata/LIDC-IDRI-0001")


def reader_masks(xml_text: str, shape, slice_z_mm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(filled, outline) boolean volumes of every reader's nodule outlines (single-point marks skipped)."""
    from skimage.draw import polygon, polygon_perimeter

    root = ET.fromstring(re.sub(r'\sxmlns="[^"]+"', "", xml_text, count=1))
    out = []
    for nodule in root.iter("unblindedReadNodule"):
        filled = np.zeros(shape, dtype=bool)
        outline = np.zeros(shape, dtype=bool)
        for roi in nodule.findall("roi"):
            k = int(np.argmin(np.abs(slice_z_mm - float(roi.findtext("imageZposition")))))
            xy = np.array([[int(e.findtext("xCoord")), int(e.findtext("yCoord"))] for e in roi.findall("edgeMap")])
            if len(xy) < 3:
                continue
            rr, cc = polygon(xy[:, 1], xy[:, 0], shape[1:])
            filled[k, rr, cc] = True
            rr, cc = polygon_perimeter(xy[:, 1], xy[:, 0], shape[1:])
            outline[k, rr, cc] = True
            filled[k, rr, cc] = True
        out.append((filled, outline))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    args = parser.parse_args()
    import SimpleITK as sitk

    from segmentation.io import load_series
    from segmentation.measure import planimetric_volume_mm3
    from segmentation.nodule import segment_nodule

    ref = json.loads((args.data / "reference.json").read_text())["nodules"][0]
    image = load_series(args.data).image
    shape = sitk.GetArrayViewFromImage(image).shape
    voxel_mm3 = float(np.prod(image.GetSpacing()))
    z_mm = np.array([image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(shape[0])])

    m = segment_nodule(image, ref["seed_lps_mm"])
    ours = np.zeros(shape, dtype=bool)
    ours[m.mask.box] = m.mask.mask

    readers = [
        r for r in reader_masks(next(args.data.rglob("*.xml")).read_text(), shape, z_mm) if (r[0] & ours).sum() > 100
    ]
    print(f"{'reader':<8} {'filled':>8} {'interior':>9} {'mean':>8} {'reference':>10}   (mm3)")
    references = sorted(ref["reader_volumes_mm3"])
    means = []
    for k, (filled, outline) in enumerate(readers, start=1):
        f, i = filled.sum() * voxel_mm3, (filled & ~outline).sum() * voxel_mm3
        means.append((f + i) / 2)
        print(f"{k:<8} {f:8.0f} {i:9.0f} {(f + i) / 2:8.0f}")
    print(f"{'':<8} {'':>8} {'':>9} {'':>8} {', '.join(f'{v:.0f}' for v in references):>10}  (reference.json, sorted)")
    print("sorted means:", ", ".join(f"{v:.0f}" for v in sorted(means)))

    planimetric = planimetric_volume_mm3(m.mask.mask, image.GetSpacing()[::-1])
    print(
        f"\nnoduled: reported volume (readers' outline convention) {m.volume_mm3:.0f} mm3, partial-volume volume "
        f"{m.partial_volume_mm3 or 0.0:.0f} mm3, mask {ours.sum() * voxel_mm3:.0f} mm3, mask + half its outline ring "
        f"{planimetric:.0f} mm3; readers' range {references[0]:.0f}-{references[-1]:.0f} mm3"
    )
    print("\nslice  noduled  readers (pixels)")
    for k in np.flatnonzero(ours.any(axis=(1, 2)) | np.any([r[0].any(axis=(1, 2)) for r in readers], axis=0)):
        print(f"{k:5d} {int(ours[k].sum()):8d}  {[int(r[0][k].sum()) for r in readers]}")


if __name__ == "__main__":
    main()
