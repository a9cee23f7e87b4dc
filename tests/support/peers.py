"""What the receive-attack tests and ``benchmarks/receive_attacks.py`` share: a TLS certificate for the
node, a raw-socket peer that trickles a request one byte a second, and a process's resident memory."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path


def self_signed_cert(directory: Path, name: str = "node") -> tuple[Path, Path]:
    """A throw-away self-signed certificate (CN=localhost, one day) and its key, made by openssl."""
    cert, key = Path(directory) / f"{name}.pem", Path(directory) / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def trickle(sock: socket.socket, data: bytes, stop: threading.Event, every_s: float = 1.0) -> None:
    """Send ``data`` one byte every ``every_s`` seconds until it is all sent, ``stop`` is set or the peer hangs up."""
    for byte in data:
        if stop.wait(every_s):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (VmRSS of /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
