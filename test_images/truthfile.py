"""``truth.json`` of a generated case: every nodule in every study, and which nodule it is across time.

Schema ``noduled.phantom-truth/1``::

    {"schema", "case", "seed", "size",
     "patient": {id, name, birth_date, sex},
     "studies": [ per-study truth (PhantomStudy.truth) + "directory" ],
     "nodules": [ {id, tracking_uid, kind, time_points: [
                    {study_uid, study_date, present, volume_mm3, solid_volume_mm3,
                     mean_diameter_mm, centroid_lps_mm (that study's frame)} ]} ]}
"""

from __future__ import annotations

import json
from pathlib import Path

from test_images.dicom_out import _json_default
from test_images.study import PhantomStudy


def case_truth(case: str, seed: int, size: str, studies: list[tuple[PhantomStudy, Path | None]]) -> dict:
    """The truth document of a case (pure)."""
    first = studies[0][0]
    p = first.patient
    ids: dict[str, dict] = {}
    for study, _ in studies:
        for n in study.nodules:
            ids.setdefault(n["id"], {"id": n["id"], "tracking_uid": n["tracking_uid"], "kind": n["kind"]})
        for n in study.truth.get("resolved_nodules", []):
            ids.setdefault(n["id"], {"id": n["id"], "tracking_uid": n["tracking_uid"]})
    for nid, rec in ids.items():
        points = []
        for study, _ in studies:
            t = next((n for n in study.nodules if n["id"] == nid), None)
            tp = {"study_uid": study.study_uid, "study_date": study.study_date.isoformat(), "present": t is not None}
            if t is not None:
                tp.update({k: t[k] for k in ("volume_mm3", "solid_volume_mm3", "mean_diameter_mm", "centroid_lps_mm")})
                if "growth" in t:
                    tp["growth_status"] = t["growth"]["status"]
            points.append(tp)
        rec["time_points"] = points
    return {
        "schema": "noduled.phantom-truth/1",
        "case": case,
        "seed": seed,
        "size": size,
        "patient": {"id": p["id"], "name": p["name"], "birth_date": p["birth_date"].isoformat(), "sex": p["sex"]},
        "studies": [{**s.truth, "directory": str(d) if d is not None else None} for s, d in studies],
        "nodules": list(ids.values()),
    }


def write_truth(case: str, seed: int, size: str, studies: list[tuple[PhantomStudy, Path | None]], path) -> Path:
    """Write :func:`case_truth` to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(case_truth(case, seed, size, studies), indent=2, default=_json_default) + "\n")
    return path
