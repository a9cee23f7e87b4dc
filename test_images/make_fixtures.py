"""Regenerate the small committed fixtures under ``test_images/fixtures/``.

    .venv/bin/python -m test_images.make_fixtures

Writes, for case ``multi`` (size small, seed 0), the seed objects a viewer would
send (``seeds_sr.dcm``, ``seeds_gsps.dcm``, ``seeds.json``) and the study's
``truth.json``; the CT series itself (~12 MB) is not committed: regenerate it
with ``noduled phantom multi --out DIR --seed 0``.  Also writes a complete tiny
study: one 8 mm solid nodule block (64 x 64 x 48) with its CT, SR, GSPS, JSON.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from test_images import generate_case, render_single_nodule, write_study

FIXTURES = Path(__file__).parent / "fixtures"


def main() -> None:
    out = FIXTURES / "multi-small-seed0"
    out.mkdir(parents=True, exist_ok=True)
    (study,) = generate_case("multi", "small", seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_study(study, tmp)
        for key in ("sr", "gsps", "seeds_json", "truth"):
            shutil.copy(paths[key], out / Path(paths[key]).name)
    single = FIXTURES / "single-solid-8mm-seed0"
    if single.exists():
        shutil.rmtree(single)
    write_study(render_single_nodule("solid", 8.0, seed=0), single)
    print(f"fixtures written under {FIXTURES}")


if __name__ == "__main__":
    main()
