"""Receive throughput: noduled vs DCMTK storescp, the same 300-slice series.

    python -m benchmarks.receive [--slices 300] [--repeats 3] [--json out.json]

storescp runs with TCP_NODELAY=1 and writes every instance to disk (no
fsync); noduled keeps its durability guarantee (fsync, atomic rename, index
commit before each success status).  Both are fed by the same DCMTK storescu.
Target: noduled >= 0.8x storescp.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.netns import reexec_in_private_network

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ct_series import write_ct_series  # noqa: E402
from tests.support.servers import NodedServer, StoreSCP  # noqa: E402

NODE_EXTRA: dict = {}


def send(port: int, aec: str, files: list[Path]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        ["storescu", "-aec", aec, "127.0.0.1", str(port), *map(str, files)], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"storescu to {aec} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reexec_in_private_network()

    with tempfile.TemporaryDirectory(prefix="noduled-bench-") as tmp:
        tmpdir = Path(tmp)
        files = write_ct_series(tmpdir / "series", args.slices, seed=7)
        total_mb = sum(p.stat().st_size for p in files) / 1e6
        times: dict[str, list[float]] = {"storescp": [], "noduled": []}
        for r in range(args.repeats):
            ref = StoreSCP(tmpdir / f"storescp-{r}").start()
            try:
                times["storescp"].append(send(ref.port, "STORESCP", files))
            finally:
                ref.stop()
            node = NodedServer(tmpdir / f"noduled-{r}", extra={"logging": {"level": "WARNING"}, **NODE_EXTRA}).start()
            try:
                times["noduled"].append(send(node.port, "NODULED", files))
                assert node.status()["totals"]["instances"] == args.slices
            finally:
                node.stop()

    rows = {}
    for name, ts in times.items():
        t = statistics.median(ts)
        rows[name] = {"seconds": t, "images_per_s": args.slices / t, "mb_per_s": total_mb / t, "runs_s": ts}
    ratio = rows["noduled"]["images_per_s"] / rows["storescp"]["images_per_s"]
    print(f"\nreceive benchmark: {args.slices} CT images 512x512, {total_mb:.1f} MB, median of {args.repeats} runs")
    print(f"{'receiver':<10} {'seconds':>8} {'images/s':>9} {'MB/s':>8}")
    for name, row in rows.items():
        print(f"{name:<10} {row['seconds']:>8.2f} {row['images_per_s']:>9.1f} {row['mb_per_s']:>8.1f}")
    print(f"ratio noduled/storescp: {ratio:.2f} (target >= 0.80)")
    if args.json:
        args.json.write_text(
            json.dumps({"slices": args.slices, "megabytes": total_mb, "receivers": rows, "ratio": ratio}, indent=2)
        )


if __name__ == "__main__":
    main()
