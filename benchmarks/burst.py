"""Burst throughput: full-size studies per hour with 2 analysis workers (issue 18, target >= 120/h).

    python -m benchmarks.burst [--studies 10] [--workers 2] [--size full] [--json out.json] [--cache-dir DIR]

One full-size ``multi`` phantom (512x512, ~300 slices, 7 nodules) is generated once and sent
``--studies`` times, each copy a different patient and study (new Patient ID, Study, Series and
SOP Instance UIDs; the seed SR's references follow), one association per study back to back, as a
PACS forwards a morning's list.  noduled (``noduled serve`` with ``[queue] workers``) analyses
them and delivers SR and SEG to a real Orthanc.  Printed: the time from the first instance sent to
the last SR in Orthanc, studies/hour over that time, and each study's last image -> SR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.netns import reexec_in_private_network

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.e2e import Harness  # noqa: E402


def _copies(paths: dict, n: int, out: Path) -> list[tuple[str, list[Path]]]:  # type: ignore[type-arg]
    """``n`` copies of the written study, each its own patient and study (UIDs remapped, references too)."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    originals = [Path(p) for p in paths["ct"]] + [Path(paths["sr"])]
    datasets = [dcmread(p) for p in originals]
    studies = []
    for k in range(n):
        mapping: dict[str, str] = {}

        def remap(ds, mapping: dict[str, str] = mapping) -> None:  # type: ignore[no-untyped-def]
            for elem in ds.iterall():
                if elem.VR == "UI" and elem.value and not str(elem.value).startswith("1.2.840.10008"):
                    values = elem.value if isinstance(elem.value, list) else [elem.value]
                    new = [mapping.setdefault(str(v), generate_uid()) for v in values]
                    elem.value = new if isinstance(elem.value, list) else new[0]

        target = out / f"study{k:02d}"
        target.mkdir(parents=True)
        files = []
        study_uid = ""
        for j, ds in enumerate(datasets):
            copy = ds.copy()
            copy.file_meta = ds.file_meta.copy()
            remap(copy)
            copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
            copy.PatientID = f"BURST{k:03d}"
            study_uid = str(copy.StudyInstanceUID)
            path = target / f"{j:04d}.dcm"
            copy.save_as(path, enforce_file_format=True)
            files.append(path)
        studies.append((study_uid, files))
    return studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--case", default="multi")
    parser.add_argument("--size", default="full", choices=("full", "small"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, help="where the generated phantom is kept for the next run")
    args = parser.parse_args()
    reexec_in_private_network()
    from benchmarks.latency import _studies

    with tempfile.TemporaryDirectory(prefix="noduled-burst-") as tmp:
        tmpdir = Path(tmp)
        study, paths = _studies(args, args.cache_dir or tmpdir / "generated")[0]
        studies = _copies(paths, args.studies, tmpdir / "copies")
        print(
            f"{args.studies} copies of {args.case}/{args.size}: {len(paths['ct'])} slices, {len(study['nodules'])} nodules each"
        )
        harness = Harness.start(tmpdir / "servers", stable_age_s=10.0, workers=args.workers)
        last_image: dict[str, float] = {}
        reported: dict[str, float] = {}
        try:

            def watch(uid: str) -> None:
                harness.wait_for_sr(uid, timeout_s=3600)
                reported[uid] = time.monotonic()

            t0 = time.monotonic()
            watchers = []
            for uid, files in studies:
                done = subprocess.run(
                    ["storescu", "-aec", "NODULED", "127.0.0.1", str(harness.node.port), *map(str, files)],
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"storescu failed: {done.stderr.strip()}")
                last_image[uid] = time.monotonic()
                w = threading.Thread(target=watch, args=(uid,), daemon=True)
                w.start()
                watchers.append(w)
            for w in watchers:
                w.join()
            elapsed = max(reported.values()) - t0
        finally:
            harness.stop()
    per_hour = args.studies / elapsed * 3600
    print(f"\n{'study':<8} {'sent at s':>10} {'last image -> SR s':>19}")
    for k, (uid, _files) in enumerate(studies):
        print(f"{k:<8} {last_image[uid] - t0:>10.1f} {reported[uid] - last_image[uid]:>19.1f}")
    print(
        f"\n{args.studies} studies in {elapsed:.1f} s with {args.workers} workers: {per_hour:.0f} studies/hour   target >= 120"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "case": args.case,
                    "size": args.size,
                    "studies": args.studies,
                    "workers": args.workers,
                    "elapsed_s": elapsed,
                    "studies_per_hour": per_hour,
                    "latency_s": [reported[u] - last_image[u] for u, _ in studies],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
