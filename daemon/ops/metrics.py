"""Prometheus metrics of the node (served at ``/metrics`` by :mod:`daemon.ops.health`).

Names are part of the operator interface (dashboards and alerts use them).
Gauges that reflect database state (queue depth, outbox pending) are read at
scrape time through the callbacks :mod:`daemon.ops.health` registers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

INSTANCES_RECEIVED = Counter(
    "noduled_instances_received",
    "DICOM instances received by the Storage SCP, by outcome (stored, duplicate, failed).",
    ["outcome"],
    registry=REGISTRY,
)
ASSOCIATIONS_REJECTED = Counter(
    "noduled_associations_rejected",
    "Connections and associations refused, by reason: not_allowed (allow-list), called_ae, max_associations, "
    "pending_limit, request_timeout, tls, pdu_too_large, malformed_pdu.",
    ["reason"],
    registry=REGISTRY,
)
STUDIES_ANALYSED = Counter(
    "noduled_studies_analysed",
    "Study analyses finished, by outcome (done, failed).",
    ["outcome"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "noduled_stage_duration_seconds",
    "Duration of each analysis stage (fetch_priors, read, seeds, load, segment, priors, assess, report, store, "
    "extras: key images + PDF, after the SR; preload_*: the same stages computed during the study-complete wait, "
    "preload_wait: the analysis waiting for them).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "noduled_deliveries",
    "C-STORE deliveries to destinations, by outcome (delivered, retry, expired).",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "noduled_delivery_seconds",
    "From an object queued in the outbox to its delivery (C-STORE answered, or committed), by SOP class "
    "(sr, seg, other).",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
STUDIES_PURGED = Counter(
    "noduled_studies_purged",
    "Studies whose CT image files were deleted by the retention policy (age or disk high-water mark).",
    registry=REGISTRY,
)
PURGED_BYTES = Counter(
    "noduled_purged_bytes",
    "Bytes of CT image files deleted by the retention policy.",
    registry=REGISTRY,
)
