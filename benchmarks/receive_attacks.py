"""The receiving node under attack: how long a legitimate association waits, how much memory a peer can take.

    python -m benchmarks.receive_attacks [--json out.json]

Against a real ``noduled serve`` (its own data directory, loopback), with a
real DCMTK ``echoscu`` as the legitimate peer (the time of one C-ECHO
association, median of 5):

- ``baseline``: nobody else connected;
- ``idle TLS``: a TLS node, one TCP connection open that sends nothing;
- ``50 half-open + 17 trickling``: 50 connections that send nothing and 17
  that send an A-ASSOCIATE-RQ one byte a second;
- ``RSS after 16 x 4 GiB PDU headers``: 16 associations each send a P-DATA-TF
  header declaring 4 GiB (growth of the node's resident memory after 3 s).

Targets (issue 17): a legitimate association delayed by at most 2 s; RSS
growth at most 64 MB.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.netns import reexec_in_private_network

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.peers import rss_bytes, self_signed_cert, trickle  # noqa: E402 (after the sys.path line above)
from tests.support.servers import NodedServer  # noqa: E402

ECHOSCU = "/usr/bin/echoscu"


def echo_s(port: int, *extra: str) -> float:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        done = subprocess.run(
            [ECHOSCU, *extra, "-aec", "NODULED", "127.0.0.1", str(port)], capture_output=True, text=True, check=False
        )
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"echoscu failed: {done.stdout} {done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reexec_in_private_network()
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="noduled-attack-") as tmp:
        tmpdir = Path(tmp)
        node = NodedServer(tmpdir / "plain", extra={"logging": {"level": "WARNING"}}).start()
        try:
            rows["baseline_s"] = echo_s(node.port)
            stop = threading.Event()
            rq = b"\x01\x00\x00\x00\x00\xcd" + b"\x00" * 205

            trickling = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(17)]
            for s in trickling:
                threading.Thread(target=trickle, args=(s, rq, stop), daemon=True).start()
            half_open = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(50)]
            time.sleep(0.5)
            rows["half_open_and_trickling_s"] = echo_s(node.port)
            stop.set()
            for s in trickling + half_open:
                s.close()

            assert node.proc is not None
            before = rss_bytes(node.proc.pid)
            ae = AE(ae_title="ATTACKER")
            ae.add_requested_context(Verification)
            assocs = [ae.associate("127.0.0.1", node.port, ae_title="NODULED") for _ in range(16)]
            for a in assocs:
                a.dul.socket.socket.sendall(b"\x04\x00\xff\xff\xff\xff" + b"\x00" * 1024)
            time.sleep(3)
            rows["rss_growth_4gib_headers_mb"] = (rss_bytes(node.proc.pid) - before) / 2**20
            for a in assocs:
                a.abort()
        finally:
            node.stop()

        cert, key = self_signed_cert(tmpdir)
        tls = {"enabled": True, "cert": str(cert), "key": str(key), "ca": str(cert), "require_client_cert": True}
        node = NodedServer(tmpdir / "tls", extra={"scp": {"tls": tls}, "logging": {"level": "WARNING"}}).start()
        try:
            tls_args = ("+tls", str(key), str(cert), "+cf", str(cert))
            rows["tls_baseline_s"] = echo_s(node.port, *tls_args)
            idle = socket.create_connection(("127.0.0.1", node.port))
            time.sleep(0.3)
            rows["tls_behind_idle_connection_s"] = echo_s(node.port, *tls_args)
            idle.close()
        finally:
            node.stop()

    print("\nreceive under attack (legitimate peer: DCMTK echoscu, one C-ECHO association, median of 5)")
    print(f"{'case':<42} {'value':>10}  target")
    print(f"{'association, nobody else connected':<42} {rows['baseline_s']:>9.3f}s")
    print(
        f"{'association, 50 half-open + 17 trickling':<42} {rows['half_open_and_trickling_s']:>9.3f}s  <= baseline + 2 s"
    )
    print(f"{'TLS association, nobody else connected':<42} {rows['tls_baseline_s']:>9.3f}s")
    print(
        f"{'TLS association, one idle connection':<42} {rows['tls_behind_idle_connection_s']:>9.3f}s  <= baseline + 2 s"
    )
    print(f"{'RSS growth, 16 x 4 GiB P-DATA headers':<42} {rows['rss_growth_4gib_headers_mb']:>8.1f}MB  <= 64 MB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
