"""``noduled serve`` delivering to a real Orthanc that is down first: /healthz says so, naming it; when Orthanc
comes back the report goes within seconds (not at the next backoff slot, 10 min here), committed by Orthanc
(Storage Commitment, its report on an association to the node's SCP), the SEG before the SR."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_commitment_orthanc import _arrival_order
from tests.integration.test_pipeline_orthanc import (
    SEG_CLASS,
    SR_CLASS,
    _write_case,
    analysis_state,
    ct_and,
    reports_in,
    storescu,
    wait_for,
)
from tests.support.servers import OrthancServer, free_port

pytestmark = pytest.mark.integration


def healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_down_pacs_is_named_in_healthz_then_gets_the_committed_report_within_seconds(
    noduled_server, tmp_path: Path, dcmtk
) -> None:  # type: ignore[no-untyped-def]
    case = _write_case(tmp_path / "case", "solid-sizes", 3)
    pacs_port, http_port = free_port(), free_port()
    node = noduled_server(
        {
            "scp": {"allowed_peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}, {"ae_title": "STORESCU"}]},
            "analysis": {"stable_age_s": 1.0},
            "queue": {"workers": 1},
            "destinations": [
                {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port, "storage_commitment": True}
            ],
            "delivery": {
                "retry_initial_s": 600.0,
                "retry_max_s": 600.0,
                "probe_interval_s": 0.5,
                "destination_down_alert_s": 3.0,
            },
            "http": {"enabled": True, "port": http_port},
            "report": {"key_images": False, "pdf": False},  # the SR and its SEG only
        }
    )
    destination = f"ORTHANC@127.0.0.1:{pacs_port}"
    study_uid = case["truth"]["study_uid"]
    assert storescu(node.port, ct_and(case["paths"], "sr")).wait(timeout=120) == 0
    wait_for(lambda: analysis_state(node, study_uid).get("state") == "done", 90, "the analysis")
    wait_for(lambda: node.status()["outbox"]["recent_errors"], 20, "a failed delivery attempt")

    code, health = wait_for(
        lambda: (h := healthz(http_port)) and h[0] == 503 and h, 15, "/healthz to report the PACS down"
    )
    assert health["status"] == "degraded" and not health["checks"]["destinations"]["ok"]
    assert f"{destination} DOWN" in health["checks"]["destinations"]["detail"]
    assert all(c["ok"] for name, c in health["checks"].items() if name != "destinations")

    pacs = OrthancServer(
        tmp_path / "pacs", modalities={"noduled": [node.ae_title, "127.0.0.1", node.port]}, dicom_port=pacs_port
    )
    try:
        pacs.start()
        back = time.monotonic()
        wait_for(lambda: node.status()["outbox"]["delivered"] == 2, 30, "both objects committed")
        took = time.monotonic() - back
        objects = reports_in(pacs, study_uid)
        assert len(objects[SR_CLASS]) == 1 and len(objects[SEG_CLASS]) == 1
        order = _arrival_order(pacs)
        seg_uid, sr_uid = (
            pacs.rest("GET", f"/instances/{objects[c][0]}/simplified-tags")["SOPInstanceUID"]  # type: ignore[index]
            for c in (SEG_CLASS, SR_CLASS)
        )
        assert order.index(seg_uid) < order.index(sr_uid)
        outbox = node.status()["outbox"]
        assert (outbox["pending"], outbox["awaiting_commitment"]) == (0, 0)
        assert "storage commitment report from ORTHANC" in node.log()
        assert took < 15, f"delivered {took:.1f} s after Orthanc came back (next backoff slot: 600 s)"
        print(f"\ndelivered and committed {took:.1f} s after Orthanc came back")
        code, health = wait_for(lambda: (h := healthz(http_port)) and h[0] == 200 and h, 10, "/healthz ok again")
        assert health["status"] == "ok" and f"{destination} up" in health["checks"]["destinations"]["detail"]
    finally:
        pacs.stop()
