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
4. records each outcome: success or warning status -> "delivered"; any
   failure -> ``attempts + 1``, ``next_attempt_at`` by exponential backoff
   (:class:`RetryPolicy`) and ``last_error`` in words.  A row that still fails
   once it is older than ``max_age_s`` becomes "expired", with a WARNING that
   names the study UID and destination (never patient identifiers).  A row
   whose file is missing from the archive, or is not readable DICOM, expires
   at once with the reason: retrying cannot help it.

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
from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from daemon.network.store_scu import StoreFile, store_files
from daemon.ops import metrics
from daemon.settings import Destination
from daemon.storage.schema import outbox

log = logging.getLogger(__name__)

PENDING, DELIVERED, EXPIRED = "pending", "delivered", "expired"



def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (the outbox's default clock)."""
    return dt.datetime.now(dt.timezone.utc)


def _utc(value: dt.datetime) -> dt.datetime:
    """``value`` as aware UTC; naive values (SQLite returns those) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


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


@dataclass(frozen=True)
class _Outcome:
    row: _Row
    ok: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (file missing or unreadable)


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
    ) -> None:
        self.engine = engine
        self.archive_dir = Path(archive_dir)
        self.destinations = tuple(destinations)
        self.calling_ae = calling_ae
        self.policy = policy
        self.clock = clock
        self.lease_s = lease_s  # a claim older than this is taken to belong to a dead process
        self.timeout_s = timeout_s  # connection, association and per-C-STORE response timeouts
        self._wake = threading.Event()

    # ---------------------------------------------------------------- enqueue
    def enqueue(self, sop_instance_uid: str, study_uid: str, relative_path: str, *, conn: Connection | None = None) -> int:
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
                    stmt = dialect_insert(outbox).values(**row).on_conflict_do_nothing(
                        index_elements=["sop_instance_uid", "destination"]
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
        """Send every pending row that is due; returns ``{"delivered", "retry", "expired"}`` counts."""
        now = _utc(now if now is not None else self.clock())
        counts = {"delivered": 0, "retry": 0, "expired": 0}
        with self.engine.connect() as conn:
            due = conn.execute(
                select(outbox)
                .where(outbox.c.state == PENDING, outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
            ).all()
        by_destination: dict[str, list[_Row]] = defaultdict(list)
        for r in due:
            by_destination[r.destination].append(
                _Row(r.id, r.sop_instance_uid, r.study_uid, r.path, r.destination, int(r.attempts or 0), _utc(r.created_at))
            )
        for destination, rows in by_destination.items():
            claimed = self._claim(rows, now)
            if not claimed:
                continue
            try:
                outcomes = self._send(destination, claimed)
            except Exception as exc:  # never lose the claim's bookkeeping to an unexpected error
                log.exception("unexpected error while delivering to %s", destination)
                outcomes = [_Outcome(row, False, f"internal error while sending: {type(exc).__name__}: {exc}") for row in claimed]
            for key, n in self._record(outcomes, now).items():
                counts[key] += n
        for key, n in counts.items():
            if n:
                metrics.DELIVERIES.labels(key).inc(n)
        return counts

    def _claim(self, rows: list[_Row], now: dt.datetime) -> list[_Row]:
        """Take the rows no other process has taken; they stay ours for ``lease_s``."""
        lease_until = now + dt.timedelta(seconds=self.lease_s)
        claimed = []
        # write-only transaction: under SQLite it takes the write lock at its
        # first statement, so two claimers serialise instead of failing.
        with self.engine.begin() as conn:
            for row in rows:
                result = conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id, outbox.c.state == PENDING, outbox.c.next_attempt_at <= now)
                    .values(next_attempt_at=lease_until)
                )
                if result.rowcount == 1:
                    claimed.append(row)
        return claimed

    def _send(self, destination: str, rows: list[_Row]) -> list[_Outcome]:
        """C-STORE ``rows`` to ``destination`` over one association (:func:`store_scu.store_files`)."""
        outcomes: list[_Outcome] = []
        sendable: list[tuple[_Row, StoreFile]] = []
        for row in rows:
            path = self.archive_dir / row.path
            if not path.is_file():
                outcomes.append(_Outcome(row, False, f"file {row.path} is missing from the archive {self.archive_dir}", True))
                continue
            try:
                meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
                sop_class = UID(str(meta.file_meta.MediaStorageSOPClassUID))
                syntax = UID(str(meta.file_meta.TransferSyntaxUID))
            except Exception as exc:  # not DICOM, no file meta, truncated...
                outcomes.append(
                    _Outcome(row, False, f"file {row.path} is not a readable DICOM file: {type(exc).__name__}: {exc}", True)
                )
                continue
            sendable.append((row, StoreFile(row.id, path, sop_class, syntax)))
        if not sendable:
            return outcomes

        try:
            ae_title, host, port = parse_destination(destination)
        except ValueError as exc:
            return outcomes + [_Outcome(row, False, str(exc)) for row, _ in sendable]
        by_key = {f.key: row for row, f in sendable}
        sent = store_files(
            [f for _, f in sendable], calling_ae=self.calling_ae, destination=destination, ae_title=ae_title, host=host,
            port=port, timeout_s=self.timeout_s,
        )
        return outcomes + [_Outcome(by_key[o.key], o.ok, o.error) for o in sent]

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
                if o.ok:
                    values: dict[str, Any] = {
                        "state": DELIVERED,
                        "attempts": attempts,
                        "delivered_at": now,
                        "last_error": None,
                    }
                    key = "delivered"
                elif o.permanent or now - row.created_at >= max_age:
                    age_days = (now - row.created_at).total_seconds() / 86400
                    reason = o.error if o.permanent else f"undelivered after {attempts} attempts over {age_days:.1f} days; last error: {o.error}"
                    values = {"state": EXPIRED, "attempts": attempts, "last_error": reason}
                    key = "expired"
                else:
                    delay = dt.timedelta(seconds=self.policy.delay_s(attempts))
                    # the last try falls due exactly at max_age, not up to max_s later
                    next_at = min(now + delay, max(row.created_at + max_age, now))
                    values = {"attempts": attempts, "next_attempt_at": next_at, "last_error": o.error}
                    key = "retry"
                if conn.execute(update(outbox).where(mine).values(**values)).rowcount == 1:
                    counts[key] += 1
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
            log.warning("gave up delivering an object of study %s to %s (%d attempts): %s", study_uid, destination, attempts, reason)
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
            return int(conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state == PENDING)).scalar_one())

    def summary(self, *, recent_errors: int = 10) -> dict[str, Any]:
        """What the outbox holds, for ``noduled status`` and ``/healthz`` (no patient data)."""
        return outbox_summary(self.engine, recent_errors=recent_errors)


def outbox_summary(engine: Engine, *, recent_errors: int = 10) -> dict[str, Any]:
    """Counts by state and destination, the oldest pending row and the latest errors.

    ``{"pending": n, "delivered": n, "expired": n, "by_destination": {dest:
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
