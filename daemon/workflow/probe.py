"""The destinations' C-ECHO probe: deliveries resume as soon as a destination is back; ``/healthz`` names one that stays down.

Every ``probe_interval_s`` each configured destination, and each destination that pending outbox
rows name, is sent a C-ECHO (:func:`daemon.network.echo.echo`).  When one that did not answer (or
whose rows wait out a backoff since before the probe started) answers again,
:meth:`daemon.workflow.outbox.Outbox.retry_now` makes its waiting rows due at once: delivery resumes
within a probe interval, not at the next backoff slot.  :meth:`DestinationProbe.health` is the
``destinations`` check of ``/healthz``: failing, naming the destination, once one has been down for
longer than ``destination_down_alert_s``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from daemon.network.echo import echo
from daemon.storage.schema import outbox
from daemon.workflow.outbox import PENDING, Outbox, parse_destination, utcnow

log = logging.getLogger(__name__)

Echo = Callable[..., "str | None"]


@dataclass
class DestinationState:
    up: bool | None = None  # None = not probed yet
    since: dt.datetime | None = None  # when it went up / down
    last_probe: dt.datetime | None = None
    error: str | None = None  # why the last probe failed


class DestinationProbe:
    """C-ECHO the destinations (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        outbox_: Outbox,
        destinations: Iterable[str],
        *,
        calling_ae: str,
        down_alert_s: float = 120.0,
        timeout_s: float = 5.0,
        clock: Callable[[], dt.datetime] = utcnow,
        echo_fn: Echo = echo,
    ) -> None:
        self.engine = engine
        self.outbox = outbox_
        self.configured = tuple(destinations)
        self.calling_ae = calling_ae
        self.down_alert_s = down_alert_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.echo = echo_fn
        self.states: dict[str, DestinationState] = {}
        self._lock = threading.Lock()

    def _destinations(self) -> list[str]:
        with self.engine.connect() as conn:
            waiting = (
                conn.execute(select(outbox.c.destination).where(outbox.c.state == PENDING).distinct()).scalars().all()
            )
        return list(dict.fromkeys([*self.configured, *waiting]))

    def probe_once(self) -> dict[str, DestinationState]:
        """C-ECHO every destination once; a destination back (or first seen up) gets its waiting rows sent now."""
        for key in self._destinations():
            try:
                ae, host, port = parse_destination(key)
            except ValueError as exc:
                error: str | None = str(exc)
            else:
                error = self.echo(
                    calling_ae=self.calling_ae,
                    destination=key,
                    ae_title=ae,
                    host=host,
                    port=port,
                    timeout_s=self.timeout_s,
                )
            now = self.clock()
            with self._lock:
                state = self.states.setdefault(key, DestinationState())
                was_up = state.up
                up = error is None
                if was_up is not up:
                    state.since = now
                    if was_up is not None:
                        if up:
                            log.info("destination %s answers C-ECHO again", key)
                        else:
                            log.warning("destination %s does not answer C-ECHO: %s", key, error)
                state.up, state.error, state.last_probe = up, error, now
            if up and was_up is not True:
                self.outbox.retry_now(key)
        with self._lock:
            return dict(self.states)

    def run(self, stop: threading.Event, *, interval_s: float = 5.0) -> None:
        """Probe every ``interval_s`` until ``stop`` is set (a background thread)."""
        while not stop.is_set():
            try:
                self.probe_once()
            except Exception:
                log.exception("destination probe failed; trying again in %g s", interval_s)
            stop.wait(interval_s)

    def health(self) -> tuple[bool, str]:
        """The ``destinations`` check: failing when one has been down longer than ``down_alert_s``."""
        now = self.clock()
        with self._lock:
            states = dict(self.states)
        if not states:
            return True, "no destination probed yet" if self.configured else "no destinations configured"
        parts, ok = [], True
        for key, s in sorted(states.items()):
            if s.up:
                parts.append(f"{key} up")
                continue
            if s.up is None:
                parts.append(f"{key} not probed yet")
                continue
            down_s = (now - s.since).total_seconds() if s.since else 0.0
            if down_s > self.down_alert_s:
                ok = False
            parts.append(f"{key} DOWN for {down_s:.0f} s (alert after {self.down_alert_s:g} s): {s.error}")
        return ok, "; ".join(parts)

    def down_count(self) -> int:
        """Destinations whose last C-ECHO failed (the ``noduled_destinations_down`` gauge)."""
        with self._lock:
            return sum(1 for s in self.states.values() if s.up is False)
