"""A noduled node and a real Orthanc on loopback, wired to each other (latency benchmark, demo).

Orthanc knows noduled as modality "noduled"; noduled delivers its reports to
Orthanc.  Studies are sent with DCMTK's storescu straight to noduled (as a
PACS forward would), and the harness waits until the SR is stored in Orthanc.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import NodedServer, OrthancServer, free_port

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


@dataclass
class Harness:
    node: NodedServer
    pacs: OrthancServer
    http_port: int

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        stable_age_s: float = 1.0,
        log_level: str = "INFO",
        retrieve: str | None = None,
        release_quiet_s: float | None = None,
        workers: int = 1,
    ) -> Harness:
        """``retrieve``: "c-move" or "c-get" to let noduled fetch priors from the Orthanc (None: no [pacs]);
        ``release_quiet_s``: the study-complete wait after the association release (None: the default)."""
        analysis: dict[str, float] = {"stable_age_s": stable_age_s}
        if release_quiet_s is not None:
            analysis["release_quiet_s"] = release_quiet_s
        pacs_port, http_port = free_port(), free_port()
        pacs_config = (
            {"pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port, "retrieve": retrieve}}
            if retrieve
            else {}
        )
        node = NodedServer(
            workdir / "noduled",
            extra={
                "scp": {"allowed_peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}, {"ae_title": "STORESCU"}]},
                "analysis": analysis,
                "queue": {"workers": workers},
                "destinations": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}],
                "http": {"enabled": True, "host": "127.0.0.1", "port": http_port},
                "logging": {"level": log_level},
                **pacs_config,
            },
        )
        pacs = OrthancServer(
            workdir / "orthanc", modalities={"noduled": [node.ae_title, "127.0.0.1", node.port]}, dicom_port=pacs_port
        )
        pacs.start()
        node.start()
        return cls(node, pacs, http_port)

    def stop(self) -> None:
        self.node.stop()
        self.pacs.stop()

    def send(self, files: list[Path]) -> float:
        """storescu to noduled; returns the time the last instance was acknowledged (monotonic)."""
        done = subprocess.run(
            ["storescu", "-aec", "NODULED", "127.0.0.1", str(self.node.port), *map(str, files)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"storescu failed: {done.stderr.strip()}")
        return time.monotonic()

    def wait_for_sr(self, study_uid: str, timeout_s: float = 300) -> str:
        """Orthanc instance ID of noduled's SR in the study, once it is there."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for study_id in self.pacs.rest(
                "POST", "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}
            ):  # type: ignore[union-attr]
                for inst in self.pacs.rest("GET", f"/studies/{study_id}/instances"):  # type: ignore[union-attr]
                    tags = self.pacs.rest("GET", f"/instances/{inst['ID']}/simplified-tags")
                    if tags.get("SOPClassUID") == SR_CLASS and str(tags.get("Manufacturer", "")).lower() == "noduled":  # type: ignore[union-attr]
                        return str(inst["ID"])
            time.sleep(0.05)
        raise TimeoutError(f"no SR for study {study_uid} in Orthanc after {timeout_s} s; see {self.node.log_path}")

    def stage_seconds(self) -> dict[str, float]:
        """Sum of each analysis stage's duration from the node's /metrics."""
        return self._metric_sums("noduled_stage_duration_seconds", "stage")

    def delivery_seconds(self) -> dict[str, float]:
        """Sum, by kind (sr, seg, other), of each object's time from its outbox row to its delivery."""
        return self._metric_sums("noduled_delivery_seconds", "kind")

    def _metric_sums(self, histogram: str, label: str) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10) as rsp:
            text = rsp.read().decode()
        pattern = rf'^{histogram}_sum\{{{label}="(\w+)"\}} ([0-9.e+-]+)$'
        return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.M)}

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=10) as rsp:
                return json.loads(rsp.read())
        except urllib.error.HTTPError as exc:  # 503 carries the JSON too
            return json.loads(exc.read())
