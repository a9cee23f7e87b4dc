"""One configuration, not N: what ``noduled serve`` publishes in the index for its workers.

A report is only as right as the configuration of whoever analysed it: a worker without
``[[destinations]]`` used to mark a study done and queue nothing; a worker with another
``[site]`` would categorise differently.  So the node that receives (``noduled serve``)
publishes the sections that decide what a report says and where it goes (:data:`SHARED`) into
the ``shared_config`` table at every start, and every ``noduled worker``, at its start:

- takes a section it leaves at its defaults (no ``[[destinations]]``, no ``[pacs]``, no
  ``[site]``) from the published configuration, so a worker needs only ``[database]``,
  ``[queue]`` and ``[storage]``;
- refuses to start, with one line naming the section, when it sets a section differently
  (two configurations for one programme is an error to fix, not a choice to guess);
- refuses to start when nothing is published yet (start ``noduled serve`` first).

Why not read the database at every analysis?  A worker would then pick up a changed
configuration half way through a burst; at start it is one decision, logged once.  Why not
only verify?  Then every worker would need a copy of every destination (the issue's lost
reports came from exactly that copy missing).  The outbox rows themselves are created from
the effective destinations in the same transaction that records the assessment
(:func:`daemon.workflow.study.analyze_study`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from daemon.settings import (
    AnalysisSettings,
    ConfigError,
    Destination,
    PACSSettings,
    ReportSettings,
    Settings,
    SiteSettings,
)
from daemon.storage.schema import shared_config

log = logging.getLogger(__name__)

SHARED = ("destinations", "pacs", "site", "analysis", "report")
# [analysis] keys that only the receiving node uses (when a study is complete), not shared
SERVE_ONLY_ANALYSIS_KEYS = frozenset({"stable_age_s", "release_quiet_s"})
_KEY_NAMES = {
    "destinations": "[[destinations]]",
    "pacs": "[pacs]",
    "site": "[site]",
    "analysis": "[analysis]",
    "report": "[report]",
}


def section_value(settings: Settings, name: str) -> Any:
    """The JSON value of one shared section of ``settings``."""
    if name == "destinations":
        return [d.model_dump(mode="json") for d in settings.destinations]
    if name == "pacs":
        return settings.pacs.model_dump(mode="json") if settings.pacs is not None else None
    if name == "site":
        return settings.site.model_dump(mode="json")
    if name == "analysis":
        return {k: v for k, v in settings.analysis.model_dump(mode="json").items() if k not in SERVE_ONLY_ANALYSIS_KEYS}
    if name == "report":  # which objects a worker sends: the key images and PDF too, or not
        return settings.report.model_dump(mode="json")
    raise KeyError(name)


def _default_value(name: str) -> Any:
    return section_value(
        Settings.model_construct(
            destinations=(), pacs=None, site=SiteSettings(), analysis=AnalysisSettings(), report=ReportSettings()
        ),
        name,
    )


def publish(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> None:
    """``noduled serve``: write the shared sections (replacing what an earlier start wrote)."""
    now = now or dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(delete(shared_config).where(shared_config.c.name.in_(SHARED)))
        for name in SHARED:
            conn.execute(
                insert(shared_config).values(
                    name=name, value_json=json.dumps(section_value(settings, name), sort_keys=True), updated_at=now
                )
            )


def published(engine: Engine) -> dict[str, Any]:
    """The sections serve published, by name ({} when none)."""
    with engine.connect() as conn:
        return {
            name: json.loads(value)
            for name, value in conn.execute(
                select(shared_config.c.name, shared_config.c.value_json).where(shared_config.c.name.in_(SHARED))
            )
        }


def adopt(engine: Engine, settings: Settings) -> Settings:
    """``noduled worker``: the settings to analyse with (see the module docstring); raises :class:`ConfigError`."""
    shared = published(engine)
    if set(shared) != set(SHARED):
        raise ConfigError(
            "no configuration published in the index database ([database] url) yet: start noduled serve "
            "(it publishes [[destinations]], [pacs], [site], [analysis] and [report] for its workers) before noduled worker"
        )
    update: dict[str, Any] = {}
    adopted = []
    for name in SHARED:
        own = section_value(settings, name)
        if own == shared[name]:
            continue
        if own != _default_value(name):
            raise ConfigError(
                f"{_KEY_NAMES[name]} of this worker differs from the one noduled serve published in the index; "
                f"make them identical or leave {_KEY_NAMES[name]} out of the worker's configuration"
            )
        adopted.append(_KEY_NAMES[name])
        value = shared[name]
        if name == "destinations":
            update[name] = tuple(Destination(**d) for d in value)
        elif name == "pacs":
            update[name] = PACSSettings(**value) if value is not None else None
        elif name == "site":
            update[name] = SiteSettings(**value)
        elif name == "report":
            update[name] = ReportSettings(**value)
        else:
            update[name] = settings.analysis.model_copy(update=value)
    if adopted:
        log.info("using noduled serve's %s (published in the index)", ", ".join(adopted))
    return settings.model_copy(update=update)
