"""The outbox: durable delivery of the node's objects (SR, SEG) to PACS by C-STORE.

DESIGN §5: the outbox holds every object until the destination confirms it;
a destination that is down delays delivery, it never drops it.

The ``outbox`` table (:mod:`daemon.storage.schema`) has one row per (object,
destination), ``state`` "pending" | "delivered" | "expired".  A delivery run
(:meth:`Outbox.deliver_due`):

1. selects the pending rows whose ``next_attempt_at`` has come;
2. per destination, *claims* them: ``UPDATE ... SET next_attempt_at = now +
   lease WHERE id = ? AND state = 'pending' AND next_attempt_at <= now``; a
   row whose update matched nothing was claimed by another process (``noduled
   serve`` and ``noduled worker`` may both deliver), so no row is sent twice
   at the same time.  A process that dies holding a claim loses it when the
   lease runs out, and the row is sent again: our SOP Instance UIDs are
   deterministic, so a resend replaces the object in the PACS, never
   duplicates it;
3. sends the claimed rows over ONE association per destination (the C-STORE
   SCU :mod:`daemon.network.store_scu`, presentation contexts from each file's
   SOP class and transfer syntax);
4. records each outcome: success or warning status -> "delivered" (with
   Storage Commitment, see below, only once the destination committed it); any
   failure -> ``attempts + 1``, ``next_attempt_at`` by exponential backoff
   (:class:`RetryPolicy`) and ``last_error`` in words.  A row that still fails
   once it is older than ``max_age_s`` becomes "expired", with a WARNING that
   names the study UID and destination (never patient identifiers).  A row
   whose file is missing from the archive, or is not readable DICOM, expires
   at once with the reason: retrying cannot help it.

Storage Commitment (``storage_commitment`` of a destination): after the
C-STOREs the stored objects are named in one N-ACTION request; the rows keep
``state = 'pending'`` with the request's Transaction UID (``commitment_uid``)
and fall due again after ``commitment_timeout_s``.  The destination's
N-EVENT-REPORT (on this association, or on a new one to the node's SCP, as
Orthanc sends it) is handed to :meth:`Outbox.record_commitment`: committed ->
"delivered"; failed -> retried with the reason; no report in time -> sent
again.

Order: an object is sent only after every object it references (an SR its
SEG and key images, by their SOP Instance UIDs anywhere in the SR) that is
queued for the same destination has been delivered (or expired): a PACS never
holds an SR whose SEG it does not have, also after a crash mid-delivery, since
the rule is read from the rows and the files at every pass.

Prompt retry: :meth:`Outbox.retry_now` makes a destination's rows that wait
out a backoff due at once; the C-ECHO probe (:mod:`daemon.workflow.probe`)
calls it when a destination that was down answers again.

Rows are delivered to the address written in the row ("AE@host:port"), even
if that destination has since been removed from the configuration: what was
promised is delivered or reported, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.uid import UID
from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from daemon.network.commitment import CommitmentReport, failure_text
from daemon.network.store_scu import Commitment, StoreFile, store_files
from daemon.ops import metrics
from daemon.settings import Destination
from daemon.storage.schema import outbox

log = logging.getLogger(__name__)

PENDING, DELIVERED, EXPIRED = "pending", "delivered", "expired"
# where a file names the objects it depends on (read without the SR content tree or the pixels)
_REFERENCE_SEQUENCES = [
    "CurrentRequestedProcedureEvidenceSequence",
    "PertinentOtherEvidenceSequence",
    "PredecessorDocumentsSequence",
    "SourceImageSequence",
    "ReferencedImageSequence",
    "ReferencedSeriesSequence",
]


def _kind(sop_class: str) -> str:
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "sr"
    return "seg" if sop_class == "1.2.840.10008.5.1.4.1.1.66.4" else "other"


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (the outbox's default clock)."""
    return dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    """``value`` as aware UTC; naive values (SQLite returns those) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def destination_key(dest: Destination) -> str:
    """The ``outbox.destination`` value of a destination: ``"AE@host:port"``."""
    return f"{dest.ae_title}@{dest.host}:{dest.port}"


def parse_destination(key: str) -> tuple[str, str, int]:
    """``"AE@host:port"`` -> (AE title, host, port); raises ValueError naming the key."""
    ae, at, host_port = key.rpartition("@")
    host, colon, port = host_port.rpartition(":")
    if not (at and colon and ae and host and port.isdigit()):
        raise ValueError(f"outbox destination {key!r} is not of the form AE@host:port")
    return ae, host.strip("[]"), int(port)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: ``initial_s * 2**(attempts-1)``, capped at ``max_s``; give up after ``max_age_s``."""

    initial_s: float = 30.0
    max_s: float = 3600.0
    max_age_s: float = 7 * 24 * 3600

    def __post_init__(self) -> None:
        for name in ("initial_s", "max_s", "max_age_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RetryPolicy.{name} must be positive, got {getattr(self, name)}")
        if self.max_s < self.initial_s:
            raise ValueError(f"RetryPolicy.max_s ({self.max_s}) must be at least initial_s ({self.initial_s})")

    def delay_s(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (attempts >= 1)."""
        exponent = max(attempts - 1, 0)
        if exponent > 62:  # 2**62 * anything positive is far beyond max_s
            return self.max_s
        return min(self.initial_s * 2.0**exponent, self.max_s)


@dataclass(frozen=True)
class _Row:
    id: int
    sop_instance_uid: str
    study_uid: str
    path: str
    destination: str
    attempts: int
    created_at: dt.datetime
    commitment_uid: str | None = None


@dataclass(frozen=True)
class _Outcome:
    row: _Row
    ok: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (file missing or unreadable)
    held: bool = False  # not sent because what it references was not stored: due again at once, no attempt counted
    commitment_uid: str | None = None  # stored; delivered when the destination's report says committed


class Outbox:
    """Delivery of archived objects to the configured destinations (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        archive_dir: Path,
        destinations: Sequence[Destination],
        *,
        calling_ae: str = "NODULED",
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], dt.datetime] = utcnow,
        lease_s: float = 120.0,
        timeout_s: float = 30.0,
        commitment_timeout_s: float = 300.0,
    ) -> None:
        self.engine = engine
        self.archive_dir = Path(archive_dir)
        self.destinations = tuple(destinations)
        self.calling_ae = calling_ae
        self.policy = policy
        self.clock = clock
        self.lease_s = lease_s  # a claim older than this is taken to belong to a dead process
        self.timeout_s = timeout_s  # connection, association and per-C-STORE response timeouts
        self.commitment_timeout_s = commitment_timeout_s  # then a stored, uncommitted object is sent again
        # rows of destinations no longer configured are delivered without commitment
        self._commitment: dict[str, Commitment] = {destination_key(d): d.commitment_mode for d in self.destinations}
        self._references: dict[int, frozenset[str]] = {}  # row id -> SOP Instance UIDs its file references
        self._kinds: dict[int, str] = {}  # row id -> "sr" | "seg" | "other" (the delivery-time metric)
        self._after: dict[int, frozenset[int]] = {}  # this pass: row id -> rows it is sent after (same association)
        self._wake = threading.Event()

    # ---------------------------------------------------------------- enqueue
    def enqueue(
        self, sop_instance_uid: str, study_uid: str, relative_path: str, *, conn: Connection | None = None
    ) -> int:
        """Queue one archived object for every configured destination.

        Idempotent: a (SOP Instance UID, destination) pair already in the
        outbox, in whatever state, is left alone.  Returns the number of rows
        created.  Call :meth:`wake` afterwards so a running loop sends at once.
        ``conn``: inside the caller's transaction (the one recording the assessment).
        """
        if not self.destinations:
            return 0
        now = _utc(self.clock())
        rows = [
            {
                "sop_instance_uid": sop_instance_uid,
                "study_uid": study_uid,
                "path": relative_path,
                "destination": destination_key(dest),
                "state": PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for dest in self.destinations
        ]
        dialect = self.engine.dialect.name
        created = 0
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            else:
                from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
            with self.engine.begin() if conn is None else nullcontext(conn) as tx:
                for row in rows:
                    stmt = (
                        dialect_insert(outbox)
                        .values(**row)
                        .on_conflict_do_nothing(index_elements=["sop_instance_uid", "destination"])
                    )
                    created += tx.execute(stmt).rowcount
        else:
            for row in rows:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(outbox).values(**row))
                    created += 1
                except IntegrityError:
                    pass
        if created:
            log.debug("queued %s of study %s for %d destination(s)", sop_instance_uid, study_uid, created)
        return created

    def wake(self) -> None:
        """Make a running :meth:`run` loop deliver now instead of at its next poll."""
        self._wake.set()

    # ---------------------------------------------------------------- deliver
    def deliver_due(self, *, now: dt.datetime | None = None, limit: int = 100) -> dict[str, int]:
        """Send every pending row that is due; returns ``{"delivered", "retry", "expired"}`` counts.

        Rows waiting for an object they reference are held; when a pass delivered what they wait
        for (no commitment, or the report came back at once), another pass sends them.
        """
        now = _utc(now if now is not None else self.clock())
        counts = {"delivered": 0, "retry": 0, "expired": 0}
        for _ in range(8):  # SR after SEG after ...: a few levels at most
            held, delivered = self._pass(now, limit, counts)
            if not (held and delivered):
                break
        for key, n in counts.items():
            if n:
                metrics.DELIVERIES.labels(key).inc(n)
        return counts

    def _pass(self, now: dt.datetime, limit: int, counts: dict[str, int]) -> tuple[int, int]:
        """One selection and send; adds to ``counts``; returns (rows held back, rows delivered)."""
        with self.engine.connect() as conn:
            due = conn.execute(
                select(outbox)
                .where(outbox.c.state == PENDING, outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
            ).all()
        rows = [
            _Row(
                r.id,
                r.sop_instance_uid,
                r.study_uid,
                r.path,
                r.destination,
                int(r.attempts or 0),
                _utc(r.created_at),
                r.commitment_uid,
            )
            for r in due
        ]
        ready = self._not_waiting(rows)
        after = self._after_in_batch([r for r in rows if r not in ready], ready)
        held = len(rows) - len(ready) - len(after)
        by_destination: dict[str, list[_Row]] = defaultdict(list)
        for row in ready + list(after):  # what is referenced first: an SR after its SEG, on one association
            by_destination[row.destination].append(row)
        self._after = {row.id: refs for row, refs in after.items()}
        delivered = 0
        for destination, dest_rows in by_destination.items():
            claimed = self._claim(dest_rows, now)
            if not claimed:
                continue
            try:
                outcomes = self._send(destination, claimed, now)
            except Exception as exc:  # never lose the claim's bookkeeping to an unexpected error
                log.exception("unexpected error while delivering to %s", destination)
                outcomes = [
                    _Outcome(row, False, f"internal error while sending: {type(exc).__name__}: {exc}")
                    for row in claimed
                ]
            for key, n in self._record(outcomes, now).items():
                counts[key] += n
                if key == "delivered":
                    delivered += n
        return held, delivered

    def _not_waiting(self, rows: list[_Row]) -> list[_Row]:
        """``rows`` without those that reference an object still pending for the same destination."""
        if not rows:
            return rows
        studies = {r.study_uid for r in rows}
        with self.engine.connect() as conn:
            pending = {
                (r.study_uid, r.destination, r.sop_instance_uid)
                for r in conn.execute(
                    select(outbox.c.study_uid, outbox.c.destination, outbox.c.sop_instance_uid).where(
                        outbox.c.state == PENDING, outbox.c.study_uid.in_(studies)
                    )
                )
            }
        waiting_for: dict[tuple[str, str], set[str]] = defaultdict(set)
        for study_uid, destination, sop_uid in pending:
            waiting_for[(study_uid, destination)].add(sop_uid)
        ready = []
        for row in rows:
            others = waiting_for.get((row.study_uid, row.destination), set()) - {row.sop_instance_uid}
            if others and self._referenced_uids(row) & others:
                log.debug(
                    "%s waits for the objects it references to be delivered to %s",
                    row.sop_instance_uid,
                    row.destination,
                )
                continue
            ready.append(row)
        return ready

    def _after_in_batch(self, waiting: list[_Row], ready: list[_Row]) -> dict[_Row, frozenset[int]]:
        """Of the ``waiting`` rows, those whose every pending reference is in ``ready`` for the same destination
        and that destination does not commit (a commitment report, not the C-STORE, delivers): they are sent on
        the same association, after what they reference, and only if that was stored.  -> row: the row ids."""
        if not waiting:
            return {}
        ready_ids = {(r.destination, r.sop_instance_uid): r.id for r in ready}
        with self.engine.connect() as conn:
            pending = {
                (r.destination, r.sop_instance_uid)
                for r in conn.execute(
                    select(outbox.c.destination, outbox.c.sop_instance_uid).where(
                        outbox.c.state == PENDING, outbox.c.study_uid.in_({r.study_uid for r in waiting})
                    )
                )
            }
        out: dict[_Row, frozenset[int]] = {}
        for row in waiting:
            if self._commitment.get(row.destination, "off") != "off":
                continue
            refs = {(row.destination, uid) for uid in self._referenced_uids(row)} & pending
            if refs and refs <= ready_ids.keys():
                out[row] = frozenset(ready_ids[k] for k in refs)
        return out

    def _referenced_uids(self, row: _Row) -> frozenset[str]:
        """The SOP Instance UIDs the row's file references: an SR lists every object of its content tree in its
        evidence sequences (PS3.3 C.17.2.3), and its predecessor; images their source and referenced images."""
        cached = self._references.get(row.id)
        if cached is not None:
            return cached
        uids: set[str] = set()
        try:
            ds = dcmread(self.archive_dir / row.path, stop_before_pixels=True, specific_tags=_REFERENCE_SEQUENCES)
            for element in ds.iterall():
                if element.keyword == "ReferencedSOPInstanceUID" and element.value:
                    uids.add(str(element.value))
        except Exception:  # missing or unreadable: _send expires it with the reason
            pass
        refs = frozenset(uids - {row.sop_instance_uid})
        if len(self._references) > 10_000:
            self._references.clear()
        self._references[row.id] = refs
        return refs

    def _claim(self, rows: list[_Row], now: dt.datetime) -> list[_Row]:
        """Take the rows no other process has taken; they stay ours for ``lease_s``.

        A row that waited for a Storage Commitment report until its deadline is sent again; its
        ``last_error`` says why.
        """
        lease_until = now + dt.timedelta(seconds=self.lease_s)
        claimed = []
        # write-only transaction: under SQLite it takes the write lock at its
        # first statement, so two claimers serialise instead of failing.
        with self.engine.begin() as conn:
            for row in rows:
                values: dict[str, Any] = {"next_attempt_at": lease_until, "claimed_until": lease_until}
                if row.commitment_uid is not None:
                    values.update(
                        commitment_uid=None,
                        last_error=f"no Storage Commitment report from {row.destination} within "
                        f"{self.commitment_timeout_s:g} s of the C-STORE (does it know this node's AE title, host and "
                        "port?); sending again",
                    )
                result = conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id, outbox.c.state == PENDING, outbox.c.next_attempt_at <= now)
                    .values(**values)
                )
                if result.rowcount == 1:
                    claimed.append(row)
        return claimed

    def _send(self, destination: str, rows: list[_Row], now: dt.datetime) -> list[_Outcome]:
        """C-STORE ``rows`` to ``destination`` over one association (:func:`store_scu.store_files`)."""
        outcomes: list[_Outcome] = []
        sendable: list[tuple[_Row, StoreFile]] = []
        for row in rows:
            path = self.archive_dir / row.path
            if not path.is_file():
                outcomes.append(
                    _Outcome(row, False, f"file {row.path} is missing from the archive {self.archive_dir}", True)
                )
                continue
            try:
                meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
                sop_class = UID(str(meta.file_meta.MediaStorageSOPClassUID))
                syntax = UID(str(meta.file_meta.TransferSyntaxUID))
            except Exception as exc:  # not DICOM, no file meta, truncated...
                outcomes.append(
                    _Outcome(
                        row, False, f"file {row.path} is not a readable DICOM file: {type(exc).__name__}: {exc}", True
                    )
                )
                continue
            sendable.append(
                (
                    row,
                    StoreFile(
                        row.id, path, sop_class, syntax, row.sop_instance_uid, self._after.get(row.id, frozenset())
                    ),
                )
            )
            if len(self._kinds) > 10_000:
                self._kinds.clear()
            self._kinds[row.id] = _kind(sop_class)
        if not sendable:
            return outcomes

        try:
            ae_title, host, port = parse_destination(destination)
        except ValueError as exc:
            return outcomes + [_Outcome(row, False, str(exc)) for row, _ in sendable]
        by_key = {f.key: row for row, f in sendable}
        sent = store_files(
            [f for _, f in sendable],
            calling_ae=self.calling_ae,
            destination=destination,
            ae_title=ae_title,
            host=host,
            port=port,
            timeout_s=self.timeout_s,
            commitment=self._commitment.get(destination, "off"),
            on_stored=lambda keys, uid: self._await_commitment(keys, uid, now),
            on_report=self.record_commitment,
        )
        return outcomes + [
            _Outcome(by_key[o.key], o.ok, o.error, commitment_uid=o.commitment_uid, held=o.held) for o in sent
        ]

    def _await_commitment(self, row_ids: Iterable[int], transaction_uid: str, now: dt.datetime) -> None:
        """Before the commitment request goes out: the rows wait for its report (until the deadline)."""
        deadline = now + dt.timedelta(seconds=self.commitment_timeout_s)
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(list(row_ids)), outbox.c.state == PENDING)
                .values(
                    commitment_uid=transaction_uid,
                    stored_at=now,
                    next_attempt_at=deadline,
                    claimed_until=None,
                    attempts=outbox.c.attempts + 1,
                )
            )

    def record_commitment(self, report: CommitmentReport, *, now: dt.datetime | None = None) -> dict[str, int]:
        """A destination's Storage Commitment report: committed rows are delivered, failed ones retried.

        Called by the SCP (report on a new association) and by the C-STORE SCU (same association).
        Returns ``{"delivered": n, "retry": n}``; a report of an unknown transaction (one replaced by a
        resend) changes nothing.
        """
        now = _utc(now if now is not None else self.clock())
        counts = {"delivered": 0, "retry": 0}
        failures: list[tuple[str, str, str]] = []
        with self.engine.begin() as conn:
            rows = {
                r.sop_instance_uid: r
                for r in conn.execute(
                    select(outbox).where(outbox.c.commitment_uid == report.transaction_uid, outbox.c.state == PENDING)
                )
            }
            for sop_uid in report.committed:
                r = rows.get(sop_uid)
                if r is None:
                    continue
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == r.id, outbox.c.state == PENDING)
                    .values(state=DELIVERED, delivered_at=now, last_error=None, commitment_uid=None)
                )
                counts["delivered"] += 1
                self._observe_delivery(int(r.id), _utc(r.created_at))
            for sop_uid, reason in report.failed:
                r = rows.get(sop_uid)
                if r is None:
                    continue
                error = f"{r.destination} stored but did not commit the object: {failure_text(reason)}"
                delay = dt.timedelta(seconds=self.policy.delay_s(max(int(r.attempts or 1), 1)))
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == r.id, outbox.c.state == PENDING)
                    .values(commitment_uid=None, next_attempt_at=now + delay, last_error=error)
                )
                counts["retry"] += 1
                failures.append((r.study_uid, r.destination, error))
        if not rows:
            log.info("storage commitment report for transaction %s, which no object waits for", report.transaction_uid)
        for study_uid, destination, error in failures:
            log.warning("delivery of an object of study %s to %s: %s (will retry)", study_uid, destination, error)
        for key, n in counts.items():
            if n:
                metrics.DELIVERIES.labels("committed" if key == "delivered" else "commit_failed").inc(n)
        if counts["delivered"]:
            self.wake()  # what waited for these objects (an SR for its SEG) may go now
        return counts

    def _observe_delivery(self, row_id: int, created_at: dt.datetime) -> None:
        seconds = (_utc(self.clock()) - created_at).total_seconds()
        metrics.DELIVERY_SECONDS.labels(self._kinds.pop(row_id, "other")).observe(max(0.0, seconds))

    def retry_now(self, destination: str, *, now: dt.datetime | None = None) -> int:
        """Make ``destination``'s rows that wait out a backoff due now (it is back); returns how many."""
        now = _utc(now if now is not None else self.clock())
        with self.engine.begin() as conn:
            n = conn.execute(
                update(outbox)
                .where(
                    outbox.c.destination == destination,
                    outbox.c.state == PENDING,
                    outbox.c.attempts > 0,
                    outbox.c.next_attempt_at > now,
                    outbox.c.commitment_uid.is_(None),
                    or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
                )
                .values(next_attempt_at=now)
            ).rowcount
        if n:
            log.info("%s answers again: %d waiting object(s) are sent now", destination, n)
            self.wake()
        return int(n)

    def _record(self, outcomes: Iterable[_Outcome], now: dt.datetime) -> dict[str, int]:
        """Write each outcome to its row; returns counts by outcome."""
        counts = {"delivered": 0, "retry": 0, "expired": 0}
        max_age = dt.timedelta(seconds=self.policy.max_age_s)
        warnings: list[tuple[str, str, int, str]] = []
        with self.engine.begin() as conn:
            for o in outcomes:
                row = o.row
                attempts = row.attempts + 1
                mine = and_(outbox.c.id == row.id, outbox.c.state == PENDING)
                if o.ok and o.commitment_uid is not None:
                    continue  # stored and counted (_await_commitment); the report, maybe already in, decides
                if o.held:  # what it references failed (and is retried): it waits for that again, unclaimed
                    conn.execute(update(outbox).where(mine).values(next_attempt_at=now, claimed_until=None))
                    continue
                if o.ok:
                    values: dict[str, Any] = {
                        "state": DELIVERED,
                        "attempts": attempts,
                        "delivered_at": now,
                        "stored_at": now,
                        "last_error": None,
                        "claimed_until": None,
                    }
                    key = "delivered"
                elif o.permanent or now - row.created_at >= max_age:
                    age_days = (now - row.created_at).total_seconds() / 86400
                    reason = (
                        o.error
                        if o.permanent
                        else f"undelivered after {attempts} attempts over {age_days:.1f} days; last error: {o.error}"
                    )
                    values = {
                        "state": EXPIRED,
                        "attempts": attempts,
                        "last_error": reason,
                        "claimed_until": None,
                        "commitment_uid": None,
                    }
                    key = "expired"
                else:
                    delay = dt.timedelta(seconds=self.policy.delay_s(attempts))
                    # the last try falls due exactly at max_age, not up to max_s later
                    next_at = min(now + delay, max(row.created_at + max_age, now))
                    values = {
                        "attempts": attempts,
                        "next_attempt_at": next_at,
                        "last_error": o.error,
                        "claimed_until": None,
                        "commitment_uid": None,
                    }
                    key = "retry"
                if conn.execute(update(outbox).where(mine).values(**values)).rowcount == 1:
                    counts[key] += 1
                    if key == "delivered":
                        self._observe_delivery(row.id, row.created_at)
                    if key == "expired":
                        warnings.append((row.study_uid, row.destination, attempts, values["last_error"]))
                    elif key == "retry":
                        log.info(
                            "delivery of an object of study %s to %s failed (attempt %d), next try at %s: %s",
                            row.study_uid,
                            row.destination,
                            attempts,
                            values["next_attempt_at"].isoformat(timespec="seconds"),
                            o.error,
                        )
        for study_uid, destination, attempts, reason in warnings:
            log.warning(
                "gave up delivering an object of study %s to %s (%d attempts): %s",
                study_uid,
                destination,
                attempts,
                reason,
            )
        return counts

    # -------------------------------------------------------------------- loop
    def run(self, stop: threading.Event, *, poll_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set: a pass, then wait ``poll_s`` or until :meth:`wake`.

        For a background thread; an unexpected error is logged and the loop
        goes on (the rows stay pending, nothing is lost).
        """
        while not stop.is_set():
            self._wake.clear()
            busy = False
            try:
                counts = self.deliver_due()
                busy = sum(counts.values()) >= 100  # a full batch: more may be due
            except Exception:
                log.exception("outbox delivery pass failed; retrying in %g s", poll_s)
            if stop.is_set():
                break
            if not busy:
                self._wake.wait(poll_s)

    # ------------------------------------------------------------------ status
    def pending_count(self) -> int:
        """Rows waiting to be delivered (the ``noduled_outbox_pending`` gauge)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state == PENDING)).scalar_one()
            )

    def summary(self, *, recent_errors: int = 10) -> dict[str, Any]:
        """What the outbox holds, for ``noduled status`` and ``/healthz`` (no patient data)."""
        return outbox_summary(self.engine, recent_errors=recent_errors)


def outbox_summary(engine: Engine, *, recent_errors: int = 10) -> dict[str, Any]:
    """Counts by state and destination, the oldest pending row and the latest errors.

    ``{"pending": n, "delivered": n, "expired": n, "awaiting_commitment": n (of the pending), "by_destination": {dest:
    {"pending": n, "delivered": n, "expired": n}}, "oldest_pending": iso | None,
    "recent_errors": [{"destination", "study_uid", "sop_instance_uid",
    "state", "attempts", "last_error", "next_attempt_at"}]}``; the errors are
    of rows not delivered, newest first.
    """
    result: dict[str, Any] = {PENDING: 0, DELIVERED: 0, EXPIRED: 0, "by_destination": {}}
    with engine.connect() as conn:
        for dest, state, n in conn.execute(
            select(outbox.c.destination, outbox.c.state, func.count()).group_by(outbox.c.destination, outbox.c.state)
        ):
            result[state] = result.get(state, 0) + int(n)
            per = result["by_destination"].setdefault(dest, {PENDING: 0, DELIVERED: 0, EXPIRED: 0})
            per[state] = per.get(state, 0) + int(n)
        result["awaiting_commitment"] = int(
            conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.state == PENDING, outbox.c.commitment_uid.is_not(None))
            ).scalar_one()
        )
        oldest = conn.execute(select(func.min(outbox.c.created_at)).where(outbox.c.state == PENDING)).scalar()
        if isinstance(oldest, str):  # SQLite returns aggregates of DATETIME columns as text
            oldest = dt.datetime.fromisoformat(oldest)
        result["oldest_pending"] = _utc(oldest).isoformat() if oldest is not None else None
        errors = conn.execute(
            select(outbox)
            .where(outbox.c.state != DELIVERED, outbox.c.last_error.is_not(None))
            .order_by(outbox.c.id.desc())
            .limit(recent_errors)
        ).all()
    result["recent_errors"] = [
        {
            "destination": r.destination,
            "study_uid": r.study_uid,
            "sop_instance_uid": r.sop_instance_uid,
            "state": r.state,
            "attempts": int(r.attempts or 0),
            "last_error": r.last_error,
            "next_attempt_at": _utc(r.next_attempt_at).isoformat() if r.state == PENDING else None,
        }
        for r in errors
    ]
    return result
