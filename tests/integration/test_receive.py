"""The receiving node against real peers: DCMTK tools, Orthanc, and crashes."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests.support.ct_series import write_ct_series
from tests.support.servers import NODULED, wait_for_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def series_300(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ct_series(tmp_path_factory.mktemp("ct300"), 300, seed=1)


def storescu(
    port: int, files: list[Path], *, aet: str = "STORESCU", aec: str = "NODULED", verbose: bool = False, **popen
) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    args = [
        "storescu",
        "-aet",
        aet,
        "-aec",
        aec,
        *(["-v"] if verbose else []),
        "127.0.0.1",
        str(port),
        *map(str, files),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **popen)


def echoscu(port: int, *, aet: str = "ECHOSCU", aec: str = "NODULED") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["echoscu", "-aet", aet, "-aec", aec, "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60
    )


def archived_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "archive").rglob("*.dcm"))


def test_storescu_300_slice_series_arrives_intact(noduled_server, series_300, dcmtk) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server()
    done = storescu(node.port, series_300)
    assert done.returncode == 0, done.stderr
    status = node.status()
    assert status["totals"] == {"studies": 1, "series": 1, "instances": 300}
    sent = {dcmread(p).SOPInstanceUID: p for p in series_300}
    stored = archived_files(node.data_dir)
    assert len(stored) == 300
    for path in stored:
        got = dcmread(path)
        want = dcmread(sent[got.SOPInstanceUID])
        assert got.PixelData == want.PixelData
        assert path.parent.name == want.SeriesInstanceUID and path.parent.parent.name == want.StudyInstanceUID
    series = status["studies"][0]["series"][0]
    assert series["modality"] == "CT" and series["slice_thickness_mm"] == 1.0 and series["instances"] == 300
    assert "Test^Receive" not in node.log() and "NODULED-TEST-1" not in node.log()  # no patient identifiers logged


def test_orthanc_forwards_a_study(noduled_server, orthanc, tmp_path, dcmtk) -> None:  # type: ignore[no-untyped-def]
    files = write_ct_series(tmp_path / "ct", 24, rows=128, cols=128, seed=2)
    node = noduled_server({"scp": {"allowed_peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}]}})
    pacs = orthanc({"noduled": [node.ae_title, "127.0.0.1", node.port]})
    uploaded = pacs.upload(files)
    study_id = uploaded[0]["ParentStudy"]
    pacs.rest("POST", "/modalities/noduled/store", study_id.encode())
    status = node.status()
    assert status["totals"]["instances"] == 24
    assert {dcmread(p).SOPInstanceUID for p in archived_files(node.data_dir)} == {
        dcmread(p).SOPInstanceUID for p in files
    }
    assert "association from ORTHANC@127.0.0.1 accepted" in node.log()


def test_peers_not_on_the_allow_list_are_rejected(noduled_server, dcmtk) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server(
        {
            "scp": {
                "allowed_peers": [
                    {"ae_title": "ORTHANC", "host": "127.0.0.1"},
                    {"ae_title": "REMOTE", "host": "10.9.9.9"},
                ]
            }
        }
    )
    assert echoscu(node.port, aet="ORTHANC").returncode == 0
    evil = echoscu(node.port, aet="EVIL")
    assert evil.returncode != 0
    assert "Calling AE Title Not Recognized" in evil.stdout + evil.stderr
    wrong_host = echoscu(node.port, aet="REMOTE")
    assert wrong_host.returncode != 0
    wrong_called = echoscu(node.port, aet="ORTHANC", aec="OTHERNODE")
    assert (
        wrong_called.returncode != 0 and "Called AE Title Not Recognized" in wrong_called.stdout + wrong_called.stderr
    )
    log = node.log()
    assert (
        log.count(
            "connection from EVIL@127.0.0.1 refused (not_allowed): calling AE title 'EVIL' is not in scp.allowed_peers"
        )
        == 1
    )
    assert log.count("'REMOTE' is allowed only from 10.9.9.9, not 127.0.0.1") == 1
    assert log.count("refused (called_ae): called AE title 'OTHERNODE' is not this node's 'NODULED'") == 1
    assert echoscu(node.port, aet="ORTHANC").returncode == 0  # still serving


def _acknowledged(storescu_output: str) -> list[str]:
    """Files storescu saw acknowledged with Success, from its -v log."""
    acked, current = [], None
    for line in storescu_output.splitlines():
        m = re.search(r"Sending file: (.+)$", line)
        if m:
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            acked.append(current)
            current = None
    return acked


def test_sigkill_mid_transfer_loses_nothing_acknowledged(noduled_server, series_300, dcmtk) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server()
    sender = subprocess.Popen(
        ["storescu", "-v", "-aec", "NODULED", "127.0.0.1", str(node.port), *map(str, series_300)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(archived_files(node.data_dir)) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    node.kill()  # SIGKILL in the middle of the transfer
    output, _ = sender.communicate(timeout=120)
    acked = _acknowledged(output)
    assert 50 <= len(acked) < 300, "the kill did not land mid-transfer"

    files_after_kill = archived_files(node.data_dir)
    # no partial file in the archive proper: files appear there only by atomic rename
    for path in files_after_kill:
        dcmread(path)  # parses completely
    parts_after_kill = list((node.data_dir / "archive" / ".incoming").iterdir())

    node.start()  # restart: recovery runs before listening
    assert list((node.data_dir / "archive" / ".incoming").iterdir()) == []
    status = node.status()
    indexed = status["totals"]["instances"]
    stored = {dcmread(p).SOPInstanceUID: p for p in archived_files(node.data_dir)}
    assert len(stored) == indexed  # every index row has its file and vice versa
    sent = {str(p): dcmread(p) for p in series_300}
    for name in acked:  # every acknowledged instance is intact
        want = sent[name]
        assert want.SOPInstanceUID in stored
        assert dcmread(stored[want.SOPInstanceUID]).PixelData == want.PixelData
    # Unacknowledged instances have no index row.  The one exception is
    # inherent to "durable before acknowledged": an instance made durable
    # whose response was on the wire when the process died (at most one per
    # association); it is complete, and sending it again is harmless.
    assert indexed - len(acked) in (0, 1)
    if parts_after_kill:  # what the killed transfer left half done was cleaned up, and said so
        assert "recovered from an interrupted run" in node.log()

    # the sender resends everything: the archive completes, no duplicates
    again = storescu(node.port, series_300)
    assert again.returncode == 0
    assert node.status()["totals"]["instances"] == 300


def _scu_store(port: int, dataset_or_path) -> Dataset:  # type: ignore[no-untyped-def]
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="NODULED")
    assert assoc.is_established
    try:
        return assoc.send_c_store(dataset_or_path)
    finally:
        assoc.release()


def test_malformed_datasets_get_a_specific_failure_and_the_server_keeps_serving(
    noduled_server, tmp_path, dcmtk
) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server()
    good = write_ct_series(tmp_path / "ct", 2, rows=16, cols=16, seed=3)

    no_study = dcmread(good[0])
    del no_study.StudyInstanceUID
    rsp = _scu_store(node.port, no_study)
    assert rsp.Status == 0xC000
    assert "no StudyInstanceUID" in rsp.ErrorComment

    # valid file meta and SOP UIDs, then garbage: does not parse
    head = Dataset()
    head.SOPClassUID = CTImageStorage
    head.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    head.file_meta = dcmread(good[1], stop_before_pixels=True).file_meta
    head.file_meta.MediaStorageSOPInstanceUID = head.SOPInstanceUID
    garbage = tmp_path / "garbage.dcm"
    head.save_as(garbage, enforce_file_format=True)
    with open(garbage, "ab") as fh:
        fh.write(b"\x10\x00\x10\x00PN\xff\x7f" + b"\xfe" * 300)  # an element longer than the data
    rsp = _scu_store(node.port, garbage)
    assert rsp.Status == 0xC000
    assert rsp.ErrorComment

    assert node.status()["totals"]["instances"] == 0
    assert list((node.data_dir / "archive" / ".incoming").iterdir()) == []
    assert echoscu(node.port).returncode == 0
    assert storescu(node.port, good).returncode == 0
    assert node.status()["totals"]["instances"] == 2
    assert "refused (0xC000): dataset has no StudyInstanceUID" in node.log()


def test_sigterm_stops_cleanly(noduled_server, dcmtk) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server()
    assert echoscu(node.port).returncode == 0
    assert node.stop() == 0
    assert "received SIGTERM, stopping" in node.log()


def test_embedded_defaults_without_configuration(tmp_path: Path, dcmtk) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 11112)) == 0:
            pytest.skip("port 11112 is in use on this machine (make test runs in a private network namespace)")
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NODULED_")}
    proc = subprocess.Popen(
        [NODULED, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_port(11112, proc=proc)
        assert echoscu(11112, aec="NODULED").returncode == 0
        assert (tmp_path / "var" / "index.sqlite").exists() and (tmp_path / "var" / "archive").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "listening as NODULED on 127.0.0.1:11112 (loopback peers only" in out


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def test_log_lines_cannot_be_forged_and_pydicom_warnings_appear_once_in_the_log_format(
    noduled_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server()
    forged = "2026-01-01T00:00:00.000Z INFO x: ok"  # (a request UID is at most 64 characters)
    ds = dcmread(write_ct_series(tmp_path / "ct", 1, rows=8, cols=8, seed=4)[0])
    ds.SOPInstanceUID = "1.2.3\n" + forged  # a request UID with a newline
    assert _scu_store(node.port, ds).Status == 0xC000
    bad_value = dcmread(write_ct_series(tmp_path / "ct2", 1, rows=8, cols=8, seed=5)[0])
    bad_value.FrameOfReferenceUID = "1.2.x.3"  # pydicom warns about it (a UI value that is not a UID)
    assert _scu_store(node.port, bad_value).Status == 0x0000
    node.stop()
    lines = node.log().splitlines()
    assert lines and all(_TIMESTAMP.match(line) for line in lines), [
        line for line in lines if not _TIMESTAMP.match(line)
    ][:3]
    assert not any(line.startswith(forged) for line in lines)
    assert sum("1.2.3\\n2026-01-01" in line and "refused" in line for line in lines) == 1  # escaped, on its own line
    warned = [line for line in lines if "Invalid value for VR UI" in line]
    # one line per value pydicom warns about (the forged UID, the Frame of Reference UID), not two, not bare on stderr
    assert len(warned) == 2 and all("py.warnings" in w and "1.2.x.3" not in w for w in warned)
    assert sum("listening as NODULED" in line for line in lines) == 1


def test_start_up_errors_name_the_setting_and_the_address(noduled_server) -> None:  # type: ignore[no-untyped-def]
    first = noduled_server()
    clash = noduled_server({"scp": {"port": first.port}}, name="clash", start=False)
    clash.port = first.port
    done = subprocess.run(
        [NODULED, "serve", "--config", str(clash.config_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port} (scp.host, scp.port): Address already in use" in done.stderr
    unknown = noduled_server({"scp": {"host": "no-such-host.invalid"}}, name="unknown", start=False)
    done = subprocess.run(
        [NODULED, "serve", "--config", str(unknown.config_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "cannot listen on scp.host 'no-such-host.invalid'" in done.stderr
    bad = noduled_server({"scp": {"network_timeout_s": 0}}, name="bad", start=False)
    done = subprocess.run(
        [NODULED, "serve", "--config", str(bad.config_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "scp.network_timeout_s must be more than 0, got 0" in done.stderr


def test_the_readme_send_example_sends_a_phantom_study(noduled_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study = tmp_path / "multi"
    subprocess.run(
        [NODULED, "phantom", "multi", "--out", str(study), "--size", "small"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    node = noduled_server()
    # README, "Send a study, see what arrived", with the port of this test's node
    done = subprocess.run(
        ["/usr/bin/storescu", "-aec", "NODULED", "+sd", "+r", "+sp", "*.dcm", "127.0.0.1", str(node.port), str(study)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    sent = list(study.rglob("*.dcm"))
    assert len(sent) > 10 and node.status()["totals"]["instances"] == len(sent)
