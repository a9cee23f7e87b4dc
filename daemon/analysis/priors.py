"""Which earlier studies of a patient count as priors, and which of them the analysis uses (pure).

One policy for the index and the PACS alike: a prior is a study of the same patient dated in the
look-back window before the current study (:func:`lookback_window`) that holds CT or an SR/SEG
written by noduled (:func:`keep_study`); of those, at most ``max_priors`` are used, the earliest
(NLCSP note 6 compares against it) and the most recent ones (:func:`select_priors`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from daemon.analysis.sop_classes import is_noduled_object

_OUR_OBJECT_MODALITIES = ("SR", "SEG")
_DAYS_PER_YEAR = 365.25

T = TypeVar("T")


@dataclass(frozen=True)
class PriorSeries:
    series_uid: str
    modality: str
    description: str | None
    slice_thickness_mm: float | None
    n_instances: int | None
    manufacturer: str | None
    convolution_kernel: str | None = None  # added: lets best_ct_series prefer lung kernels
    image_orientation: tuple[float, ...] | None = None  # ImageOrientationPatient when known (the index has it)


@dataclass(frozen=True)
class PriorStudy:
    study_uid: str
    study_date: dt.date | None
    description: str | None
    modalities: tuple[str, ...]
    source: Literal["index", "pacs"]
    series: tuple[PriorSeries, ...] = ()

    @property
    def has_ct(self) -> bool:
        return "CT" in self.modalities or any(s.modality == "CT" for s in self.series)

    @property
    def our_reports(self) -> tuple[PriorSeries, ...]:
        """The SR/SEG series noduled wrote in this study (earlier reports)."""
        return tuple(s for s in self.series if is_our_series(s))


def is_our_series(s: PriorSeries) -> bool:
    return s.modality in _OUR_OBJECT_MODALITIES and is_noduled_object(s.manufacturer)


def lookback_window(before: dt.date, lookback_years: float) -> tuple[dt.date, dt.date]:
    """First and last study date that count as prior: ``[before - lookback, before - 1 day]``."""
    if lookback_years <= 0:
        raise ValueError(f"lookback_years must be more than 0, got {lookback_years}")
    start = before - dt.timedelta(days=round(lookback_years * _DAYS_PER_YEAR))
    return start, before - dt.timedelta(days=1)


def keep_study(modalities: Iterable[str], study_series: Sequence[PriorSeries]) -> bool:
    """A prior is a study with CT, or one holding an SR/SEG written by noduled."""
    mods = set(modalities) | {s.modality for s in study_series}
    return "CT" in mods or any(is_our_series(s) for s in study_series)


def may_hold_priors(modalities: Sequence[str]) -> bool:
    """From ModalitiesInStudy alone (empty: unknown): worth asking for the study's series."""
    return not modalities or "CT" in modalities or bool(set(modalities) & set(_OUR_OBJECT_MODALITIES))


def select_priors(oldest_first: Sequence[T], max_priors: int) -> list[T]:
    """The priors the analysis uses: all of them when at most ``max_priors``, else the earliest
    and the ``max_priors - 1`` most recent ones (only the earliest when ``max_priors`` is 1)."""
    if max_priors < 1:
        raise ValueError(f"max_priors must be at least 1, got {max_priors}")
    if len(oldest_first) <= max_priors:
        return list(oldest_first)
    recent = list(oldest_first[len(oldest_first) - (max_priors - 1) :]) if max_priors > 1 else []
    return [oldest_first[0], *recent]


def series_to_fetch(remote: PriorStudy, local: PriorStudy | None = None) -> tuple[str, ...]:
    """Series UIDs of a PACS prior that the node needs and does not hold complete.

    Needed: the best CT series (:func:`daemon.analysis.series.best_ct_series`) and every SR/SEG
    noduled wrote (earlier reports: tracking UIDs and categories).  A series counts as held when
    the index has it with at least as many instances as the PACS reports (or at all, when the
    PACS gives no count).
    """
    from daemon.analysis.series import best_ct_series

    wanted = [s for s in (best_ct_series(remote), *remote.our_reports) if s is not None]
    held = {s.series_uid: s.n_instances or 0 for s in (local.series if local else ())}
    missing = []
    for s in wanted:
        have = held.get(s.series_uid)
        if have is None or (s.n_instances is not None and have < s.n_instances):
            missing.append(s.series_uid)
    return tuple(dict.fromkeys(missing))
