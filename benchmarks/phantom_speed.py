"""Generation time of synthetic studies (test_images): ``full`` and ``small``, plus writing DICOM.

Prints a table; ``--json PATH`` also writes the figures.  Goals (issue 3):
one ``full`` study (512 x 512 x 300) < 30 s, one ``small`` study < 3 s, on the
project's 2-core machine.  Wall-clock and process CPU time are both reported,
since the machine is shared (CPU time is what the generator itself costs).

    .venv/bin/python -m benchmarks.phantom_speed [--case solid-sizes] [--sizes full,small] [--write] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="solid-sizes")
    ap.add_argument("--sizes", default="small,full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="also time write_study (CT + SR + GSPS + JSON)")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)

    from test_images import generate_case, render_single_nodule, write_study

    rows = []
    _, w, c = _timed(lambda: render_single_nodule("solid", 8.0, seed=args.seed))
    rows.append(
        {
            "what": "render_single_nodule solid 8 mm",
            "size": "block",
            "studies": 1,
            "wall_s": w,
            "cpu_s": c,
            "goal_s": None,
        }
    )
    for size in args.sizes.split(","):
        studies, w, c = _timed(lambda size=size: generate_case(args.case, size, seed=args.seed))
        shape = "x".join(str(v) for v in studies[0].hu.shape[::-1])
        rows.append(
            {
                "what": f"generate_case {args.case}",
                "size": f"{size} ({shape})",
                "studies": len(studies),
                "wall_s": w / len(studies),
                "cpu_s": c / len(studies),
                "goal_s": 30.0 if size == "full" else 3.0,
            }
        )
        if args.write:
            with tempfile.TemporaryDirectory() as tmp:
                _, w, c = _timed(lambda st=studies: write_study(st[0], os.path.join(tmp, "s")))
            rows.append({"what": "write_study", "size": size, "studies": 1, "wall_s": w, "cpu_s": c, "goal_s": None})
        del studies

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"phantom generation speed (seed {args.seed}; load average {load:.2f} on {os.cpu_count()} CPUs)")
    print(f"{'what':34s} {'size':22s} {'per study wall s':>17s} {'cpu s':>7s} {'goal s':>7s}  ok")
    for r in rows:
        goal = "" if r["goal_s"] is None else f"{r['goal_s']:.0f}"
        ok = "" if r["goal_s"] is None else ("yes" if r["wall_s"] < r["goal_s"] else "NO")
        print(f"{r['what']:34s} {r['size']:22s} {r['wall_s']:17.2f} {r['cpu_s']:7.2f} {goal:>7s}  {ok}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"load_average": load, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
