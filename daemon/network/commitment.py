"""Storage Commitment Push Model (PS3.4 Annex J): the request noduled sends, the report it reads.

After its C-STOREs the outbox asks the destination to commit the objects (N-ACTION-RQ, action type 1, on the
well-known SOP Instance); the destination answers with an N-EVENT-REPORT-RQ naming the committed and the failed
instances, on the same association or, as Orthanc does, on a new association it opens to this node's SCP.
Both ends use :func:`parse_report`; the outbox (:mod:`daemon.workflow.outbox`) decides what the answer means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

PUSH_MODEL_CLASS: UID = UID(str(StorageCommitmentPushModel))
PUSH_MODEL_INSTANCE = UID("1.2.840.10008.1.20.1.1")  # the well-known SOP Instance (PS3.4 J.3.1)
REQUEST_COMMIT = 1  # N-ACTION Action Type ID: Request Storage Commitment
EVENT_ALL_COMMITTED, EVENT_SOME_FAILED = 1, 2  # N-EVENT-REPORT Event Type IDs

# Failure Reason (0008,1197) values, PS3.3 C.14.1.1
FAILURE_REASONS = {
    0x0110: "Processing failure",
    0x0112: "No such object instance",
    0x0213: "Resource limitation",
    0x0122: "Referenced SOP Class not supported",
    0x0119: "Class / Instance conflict",
    0x0131: "Duplicate transaction UID",
}


@dataclass(frozen=True)
class CommitmentReport:
    """What a destination reported for one Storage Commitment transaction."""

    transaction_uid: str
    committed: tuple[str, ...]  # SOP Instance UIDs
    failed: tuple[tuple[str, int], ...]  # (SOP Instance UID, Failure Reason)


def failure_text(reason: int) -> str:
    """A Failure Reason in words: ``"0x0112 (No such object instance)"``."""
    return f"0x{reason:04X} ({FAILURE_REASONS.get(reason, 'unknown reason')})"


def build_request(transaction_uid: str, objects: Sequence[tuple[str, str]]) -> Dataset:
    """The N-ACTION-RQ Action Information for ``objects`` ((SOP Class UID, SOP Instance UID) pairs)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_instance in objects:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


def parse_report(info: Dataset) -> CommitmentReport:
    """The N-EVENT-REPORT-RQ Event Information as a :class:`CommitmentReport`; ValueError names what is missing."""
    uid = str(info.get("TransactionUID", "") or "").strip()
    if not uid:
        raise ValueError("storage commitment report without a Transaction UID")
    committed = tuple(
        str(item.ReferencedSOPInstanceUID)
        for item in info.get("ReferencedSOPSequence", [])
        if "ReferencedSOPInstanceUID" in item
    )
    failed = tuple(
        (str(item.ReferencedSOPInstanceUID), int(item.get("FailureReason", 0x0110) or 0x0110))
        for item in info.get("FailedSOPSequence", [])
        if "ReferencedSOPInstanceUID" in item
    )
    return CommitmentReport(uid, committed, failed)
