"""Seeds written by test_images (SR, GSPS, JSON) land within 0.5 mm of where they were drawn."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from dicom_sr.labels import parse_labels
from dicom_sr.seeds import is_seed_object, read_seeds

test_images = pytest.importorskip("test_images")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    (study,) = test_images.generate_case("multi", size="small")
    paths = test_images.write_study(study, tmp_path_factory.mktemp("multi"))
    headers = {}
    for p in paths["ct"]:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        headers[str(ds.SOPInstanceUID)] = ds
    return study, paths, headers


def _drawn(study, headers):
    """Where each nodule's seed was drawn: its x, y on the slice nearest its z."""
    zs = np.array(sorted(float(h.ImagePositionPatient[2]) for h in headers.values()))
    out = []
    for n in study.nodules:
        x, y, z = n["seed_lps_mm"]
        out.append((n, np.array([x, y, zs[np.argmin(abs(zs - z))]])))
    return out


@pytest.mark.parametrize("kind", ["sr", "gsps", "seeds_json"])
def test_seeds_land_where_drawn(written, kind):
    study, paths, headers = written
    if kind != "seeds_json":
        assert is_seed_object(pydicom.dcmread(paths[kind]))
    seeds = read_seeds(paths[kind], images=headers)
    assert len(seeds) == len(study.nodules)
    for nodule, drawn in _drawn(study, headers):
        target = drawn if kind != "seeds_json" else np.asarray(nodule["seed_lps_mm"], float)
        distances = [np.linalg.norm(np.asarray(s.position_lps_mm) - target) for s in seeds]
        seed = seeds[int(np.argmin(distances))]
        assert min(distances) < 0.5, (kind, nodule["id"], min(distances))
        labels = " ".join(nodule.get("labels", []))
        expected = parse_labels(labels)
        for name in ("composition", "benign_calcification", "juxtapleural", "spiculated"):
            if getattr(expected, name) is not None:
                assert getattr(seed.attributes, name) == getattr(expected, name), (kind, nodule["id"], name)
        if kind != "seeds_json":
            assert seed.series_uid == study.series_uid
