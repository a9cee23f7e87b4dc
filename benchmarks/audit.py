"""Registry benchmark: a generated cohort of N exams -> ``noduled export`` and ``noduled audit`` times and peak memory.

The cohort (tests/support/cohort.py: real NLCSP categories, dose, outcomes, opt-outs) is written through
the pipeline's record functions into a fresh index (SQLite by default, ``--database-url`` for
PostgreSQL); then the real commands run as child processes, each timed (wall clock) and measured
(peak resident memory from ``wait4``).  Target: the audit of 100,000 exams in under a minute.

    python -m benchmarks.audit --exams 100000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODULED = str(Path(sys.executable).with_name("noduled"))
AUDIT_TARGET_S = 60.0


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
    return seconds, usage.ru_maxrss / 1024.0, out  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exams", type=int, default=100_000, help="about this many exams (default 100000)")
    ap.add_argument("--database-url", default="", help="index database (default: a fresh SQLite file)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "audit.json")
    ap.add_argument("--reuse", action="store_true", help="keep the cohort already in --workdir (skip generating it)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from daemon.storage.db import open_index
    from tests.support.cohort import CohortSpec, build_cohort

    work = args.workdir or Path(tempfile.mkdtemp(prefix="noduled-audit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{work / 'var' / 'index.sqlite'}"
    config = work / "noduled.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{work / "var"}"\n[database]\nurl = "{args.database_url}"\n'
        '[registry]\npseudonym_key = "benchmark-key"\nfacility_id = "BENCH01"\n'
    )
    # about 2.4 exams per participant with the cohort's rules (3 rounds, some stop, referrals stop)
    spec = CohortSpec(participants=max(10, math.ceil(args.exams / 2.4)), rounds=3)
    engine = open_index(url)
    t0 = time.perf_counter()
    last = [0]

    def progress(n: int) -> None:
        if n - last[0] >= 10_000:
            last[0] = n
            print(f"  cohort: {n} exams ({time.perf_counter() - t0:.0f} s)", flush=True)

    if args.reuse:
        from sqlalchemy import func, select

        from daemon.storage.schema import exams, participants

        with engine.connect() as conn:
            n_exams = int(conn.execute(select(func.count()).select_from(exams)).scalar_one())
            n_participants = int(conn.execute(select(func.count()).select_from(participants)).scalar_one())
        build_s = float("nan")
        print(f"cohort (reused): {n_exams} exams of {n_participants} participants")
    else:
        cohort = build_cohort(engine, spec, progress=progress)
        build_s = time.perf_counter() - t0
        n_exams, n_participants = len(cohort.exams), len(cohort.participants)
        print(
            f"cohort: {n_exams} exams of {n_participants} participants, {len(cohort.outcomes)} outcomes in {build_s:.1f} s"
        )
    engine.dispose()

    env = {**os.environ, "PYTHONPATH": str(REPO), "NODULED_CONFIG": str(config)}
    dates = ["--from", "2021-01-01", "--to", "2026-06-30"]
    rows = []
    for name, cmd in (
        ("export lcsr", [NODULED, "export", "--format", "lcsr", *dates, "--out", str(work / "lcsr_exam.txt")]),
        ("export csv", [NODULED, "export", "--format", "csv", *dates, "--out", str(work / "csv")]),
        ("audit", [NODULED, "audit", *dates, "--as-of", "2026-06-30", "--out", str(work / "audit.html")]),
    ):
        seconds, peak_mb, out = _run(cmd, env)
        rows.append({"step": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb, 1)})
        print(out.strip().splitlines()[-1] if out.strip() else "")

    audit_s = next(r["seconds"] for r in rows if r["step"] == "audit")
    print()
    print(f"{'step':<14}{'exams':>9}{'seconds':>10}{'peak MB':>10}")
    for r in rows:
        print(f"{r['step']:<14}{n_exams:>9}{r['seconds']:>10.2f}{r['peak_rss_mb']:>10.1f}")
    verdict = "met" if audit_s < AUDIT_TARGET_S else "NOT met"
    print(
        f"target: audit < {AUDIT_TARGET_S:.0f} s -> {verdict} ({audit_s:.1f} s); database: {'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "exams": n_exams,
                "participants": n_participants,
                "cohort_build_s": None if build_s != build_s else round(build_s, 1),
                "database": "postgresql" if args.database_url else "sqlite",
                "steps": rows,
                "audit_target_s": AUDIT_TARGET_S,
                "audit_target_met": audit_s < AUDIT_TARGET_S,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json} (work files in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
