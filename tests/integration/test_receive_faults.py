"""The receiving node on a really full disk, with archive files removed by hand, and `noduled verify`.

The full disk is a size-limited tmpfs mounted by the test (root only; skipped
otherwise), holding the node's whole data directory (archive, index, queue),
so both the archive and the index run out of space, as on a real node.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.support.ct_series import write_ct_series
from tests.support.servers import NODULED, NodedServer, free_port, wait_for_port

pytestmark = pytest.mark.integration

STORESCU = "/usr/bin/storescu"


def _storescu(port: int, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STORESCU, "-v", "-aec", "NODULED", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _responses(output: str) -> dict[str, str]:
    """File sent -> the status storescu was told (from its -v log)."""
    out, current = {}, None
    for line in output.splitlines():
        m = re.search(r"Sending file: (.+)$", line)
        if m:
            current = m.group(1).strip()
            continue
        m = re.search(r"Received Store Response \((.+)\)", line)
        if m and current:
            out[current] = m.group(1)
            current = None
    return out


def _healthz(port: int) -> tuple[int, dict]:
    wait_for_port(port)  # the HTTP endpoints start right after the DICOM listener
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _verify(node: NodedServer, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NODULED, "verify", "--config", str(node.config_path), *extra], capture_output=True, text=True
    )


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs: a real filesystem that really fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (run as root, e.g. in CI)")
    mnt = tmp_path / "vol"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_loses_no_acknowledged_instance_and_a_resend_completes_the_archive(
    tmp_path: Path, small_volume: Path
) -> None:
    files = write_ct_series(tmp_path / "ct", 48, seed=11)  # 48 x 525 KB = 25 MB > 20 MiB
    http_port = free_port()
    node = NodedServer(
        tmp_path / "node",
        extra={"storage": {"data_dir": str(small_volume / "var")}, "http": {"enabled": True, "port": http_port}},
    ).start()
    try:
        first = _storescu(node.port, files)
        told = _responses(first.stdout + first.stderr)
        acked = [f for f, status in told.items() if status == "Success"]
        refused = {f: s for f, s in told.items() if s != "Success"}
        assert 10 <= len(acked) < 48 and refused, "the disk did not fill mid-series"
        assert all("OutOfResources" in s or "Out of Resources" in s or "0xa7" in s.lower() for s in refused.values()), (
            refused
        )
        log = node.log()
        assert "Traceback" not in log
        assert log.count("refused (0xA70") == 1  # one WARNING line for the association, not one per instance
        sent = {str(p): dcmread(p) for p in files}
        archived = {dcmread(p).SOPInstanceUID: p for p in (small_volume / "var" / "archive").rglob("*.dcm")}
        for name in acked:  # every acknowledged instance is on disk, complete
            assert sent[name].SOPInstanceUID in archived
            assert dcmread(archived[sent[name].SOPInstanceUID]).PixelData == sent[name].PixelData

        subprocess.run(["mount", "-o", "remount,size=64m", str(small_volume)], check=True)  # space is freed
        again = _storescu(node.port, files)
        assert again.returncode == 0 and set(_responses(again.stdout + again.stderr).values()) == {"Success"}
        assert node.status()["totals"]["instances"] == 48
        assert _verify(node, "--hash").returncode == 0
    finally:
        node.stop()
    node.start()  # a restart finds nothing to repair
    try:
        assert "archive check at start-up" not in node.log()
        status, body = _healthz(http_port)
        assert status == 200 and body["checks"]["archive"]["ok"]
    finally:
        node.stop()


def test_files_removed_by_hand_are_reported_and_restored_by_a_resend(noduled_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = write_ct_series(tmp_path / "ct", 12, rows=64, cols=64, seed=12)
    http_port = free_port()
    node = noduled_server({"http": {"enabled": True, "port": http_port}})
    assert _storescu(node.port, files).returncode == 0
    stored = sorted((node.data_dir / "archive").rglob("*.dcm"))
    for path in stored[:3]:  # an administrator frees space
        path.unlink()
    stored[3].write_bytes(stored[3].read_bytes()[:500])  # and one file is damaged

    report = _verify(node)
    assert report.returncode == 1
    assert report.stdout.count("indexed, file missing") == 3 and report.stdout.count("file of the wrong size") == 1

    node.stop()
    node.start()  # start-up reconciles: rows without (intact) files leave the index, and are reported
    assert "archive check at start-up: 4 acknowledged instances have no (intact) file" in node.log()
    status, body = _healthz(http_port)
    assert status == 503 and not body["checks"]["archive"]["ok"]
    assert "4 acknowledged instances are missing" in body["checks"]["archive"]["detail"]
    st = node.status()
    assert st["totals"]["instances"] == 8 and len(st["integrity"]["still_missing"]) == 4
    out = subprocess.run([NODULED, "status", "--config", str(node.config_path)], capture_output=True, text=True)
    assert "4 acknowledged instances are missing from the archive" in out.stdout
    assert _verify(node).returncode == 1  # still missing until received again

    assert _storescu(node.port, files).returncode == 0  # the PACS sends the study again
    assert node.status()["totals"]["instances"] == 12
    archived = [p for p in (node.data_dir / "archive").rglob("*.dcm") if ".quarantine" not in p.parts]
    assert len(archived) == 12
    for path in archived:
        dcmread(path).pixel_array  # noqa: B018 - every file reads completely
    assert list((node.data_dir / "archive" / ".quarantine").rglob("*.dcm"))  # the damaged copy, kept aside
    status, body = _healthz(http_port)
    assert status == 200, body
    assert _verify(node, "--hash").returncode == 0
