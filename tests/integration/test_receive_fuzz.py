"""Fuzz: a few hundred mutated data sets and PDUs against a running node.

Asserts what the PACS and the security team care about: the node keeps
serving (a real echoscu afterwards), every instance it acknowledged reads
back completely (pixel data decoded), and its memory stays bounded.  Seeded,
so a failure is reproducible; bounded in time (a few hundred cases, ~30 s).
"""

from __future__ import annotations

import io
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from tests.support.ct_series import ct_slice

pytestmark = pytest.mark.integration

SEED = 17
DATASETS = 300
PDUS = 120


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _encoded(i: int, rng: random.Random) -> bytes:
    ds = ct_slice(
        "1.2.826.0.1.3680043.8.498.17",
        "1.2.826.0.1.3680043.8.498.17.1",
        i,
        np.asarray(rng.sample(range(-1000, 1000), 16 * 16), dtype=np.int16).reshape(16, 16),
    )
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _mutate(data: bytes, rng: random.Random) -> bytes:
    meta_end = 132 + 12 + struct.unpack_from("<L", data, 140)[0]  # keep the file meta: the request is built from it
    body = bytearray(data[meta_end:])
    kind = rng.randrange(7)
    if kind == 0:  # cut short anywhere
        body = body[: rng.randrange(len(body))]
    elif kind == 1:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
    elif kind == 2:  # a random length field
        pos = rng.randrange(0, len(body) - 4)
        body[pos : pos + 4] = struct.pack("<L", rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]))
    elif kind == 3:  # random bytes inserted
        pos = rng.randrange(len(body))
        body[pos:pos] = rng.randbytes(rng.randint(1, 64))
    elif kind == 4:  # a chunk removed
        pos = rng.randrange(len(body))
        del body[pos : pos + rng.randint(1, 64)]
    elif kind == 5:  # pixel data shortened or lengthened (the image no longer matches its rows and columns)
        body = body[: len(body) - rng.choice([2, 4, 100])] if rng.random() < 0.5 else body + bytes(rng.choice([2, 64]))
    else:  # garbage after a valid start
        body = body[: rng.randrange(len(body))] + bytearray(rng.randbytes(rng.randint(8, 300)))
    return data[:meta_end] + bytes(body)


def _pdu_cases(rng: random.Random) -> list[bytes]:
    cases = []
    for _ in range(PDUS):
        kind = rng.randrange(4)
        if kind == 0:
            cases.append(rng.randbytes(rng.randint(1, 200)))
        elif kind == 1:  # a known type with a random declared length and a short body
            cases.append(
                struct.pack(">BBL", rng.randint(1, 7), 0, rng.randrange(1 << 32)) + rng.randbytes(rng.randint(0, 64))
            )
        elif kind == 2:  # an A-ASSOCIATE-RQ header and garbage of the declared length
            n = rng.randint(0, 300)
            cases.append(struct.pack(">BBL", 1, 0, n) + rng.randbytes(n))
        else:  # a plausible A-ASSOCIATE-RQ with some bytes flipped
            body = bytearray(
                b"\x00\x01\x00\x00"
                + b"NODULED".ljust(16)
                + b"FUZZER".ljust(16)
                + bytes(32)
                + b"\x10\x00\x00\x15"
                + b"1.2.840.10008.3.1.1.1"
            )
            for _ in range(rng.randint(1, 6)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            cases.append(struct.pack(">BBL", 1, 0, len(body)) + bytes(body))
    return cases


def test_mutated_data_sets_and_pdus_leave_the_node_serving_and_every_acknowledged_instance_readable(
    noduled_server,
) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server({"scp": {"association_request_timeout_s": 2}})
    assert node.proc is not None
    rng = random.Random(SEED)
    rss_before = _rss_bytes(node.proc.pid)
    t0 = time.monotonic()

    _config.STORE_SEND_CHUNKED_DATASET = True  # send the files' bytes as they are, not re-encoded
    ae = AE(ae_title="FUZZER")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    acked: dict[str, bytes] = {}
    statuses: dict[int, int] = {}
    tmp = node.workdir / "cases"
    tmp.mkdir()
    assoc = None
    try:
        for i in range(DATASETS):
            data = _mutate(_encoded(i, rng), rng)
            path = tmp / f"{i}.dcm"
            path.write_bytes(data)
            if assoc is None or not assoc.is_established:
                assoc = ae.associate("127.0.0.1", node.port, ae_title="NODULED")
                assert assoc.is_established, f"case {i}: the node no longer accepts associations"
            rsp = assoc.send_c_store(path)
            status = int(getattr(rsp, "Status", -1))
            statuses[status] = statuses.get(status, 0) + 1
            if status == 0x0000:
                acked[dcmread(path, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID] = data
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        if assoc is not None and assoc.is_established:
            assoc.release()

    for payload in _pdu_cases(rng):
        with socket.create_connection(("127.0.0.1", node.port)) as s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(3)
                while s.recv(65536):
                    pass
            except OSError:
                pass

    assert time.monotonic() - t0 < 120
    assert (
        subprocess.run(
            ["/usr/bin/echoscu", "-aec", "NODULED", "127.0.0.1", str(node.port)], capture_output=True
        ).returncode
        == 0
    )
    assert 0 < len(acked) < DATASETS and statuses.get(0xC000, 0) > DATASETS // 3, statuses  # both outcomes exercised

    archived = {
        p.stem: p for p in (node.data_dir / "archive").rglob("*.dcm") if not any(x.startswith(".") for x in p.parts)
    }
    unreadable = []
    for uid in acked:
        path = archived.get(uid)
        try:
            assert path is not None, "acknowledged but not archived"
            ds = dcmread(path)
            for _ in ds.iterall():
                pass
            ds.pixel_array  # noqa: B018
        except Exception as exc:  # noqa: BLE001
            unreadable.append(f"{uid}: {type(exc).__name__}: {exc}")
    assert unreadable == [], unreadable[:5]
    assert node.status()["totals"]["instances"] == len(acked)
    grown = _rss_bytes(node.proc.pid) - rss_before
    assert grown < 150 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB"
    assert "Traceback" not in node.log()
