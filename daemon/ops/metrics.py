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
    "Associations rejected at A-ASSOCIATE (peer not on the allow-list, wrong called AE title).",
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
    "Duration of each analysis stage (seeds, load, segment, priors, assess, report, record).",
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
