"""Reader labels on seed annotations (DESIGN §6).

:func:`parse_labels` turns the free text a radiologist typed next to a mark
("part-solid pfn", "Nodule 2 GGN", "infection") into
:class:`~dicom_sr.findings.ReaderAttributes`.  Labels are matched
case-insensitively as whole words; words that are not labels are ignored
(viewers add their own text: tool names, areas, units).  Two labels that
contradict each other on the same attribute ("solid ggn") raise
:class:`LabelConflict`, because guessing would change the category.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from dicom_sr.findings import ReaderAttributes

__all__ = ["LABELS", "LabelConflict", "parse_labels"]


class LabelConflict(ValueError):
    """Two reader labels assign different values to the same attribute."""


# label word -> (ReaderAttributes field, value); DESIGN §6 table, in its order
LABELS: dict[str, tuple[str, object]] = {
    "solid": ("composition", "solid"),
    "part-solid": ("composition", "part-solid"),
    "ps": ("composition", "part-solid"),
    "ggn": ("composition", "non-solid"),
    "ground-glass": ("composition", "non-solid"),
    "non-solid": ("composition", "non-solid"),
    "calcified": ("benign_calcification", True),
    "fat": ("fat", True),
    "juxtapleural": ("juxtapleural", True),
    "pfn": ("perifissural", True),
    "airway-subseg": ("airway", "subsegmental"),
    "airway-seg": ("airway", "segmental-or-proximal"),
    "cyst-thin": ("cyst", "thin-walled"),
    "cyst-thick": ("cyst", "thick-walled"),
    "cyst-multi": ("cyst", "multilocular"),
    "spiculated": ("spiculated", True),
    "infection": ("infection_or_inflammation", True),
    "suspicious": ("suspicious_features", True),
    "additional": ("actionable_additional_findings", True),
    "no-nodules": ("no_nodules", True),
}

# a word: letters/digits joined by hyphens (underscores count as hyphens)
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def words(text: str) -> list[str]:
    """The lower-case words of ``text`` as the label matcher sees them."""
    return _WORD.findall(text.lower().replace("_", "-"))


def parse_labels(text: str | None) -> ReaderAttributes:
    """Reader attributes asserted by the labels in ``text`` (None/"" -> nothing asserted).

    >>> parse_labels("Nodule 1: Part-Solid, PFN").composition
    'part-solid'
    """
    found: dict[str, tuple[Any, str]] = {}
    for word in words(text or ""):
        if word not in LABELS:
            continue
        attribute, value = LABELS[word]
        if attribute in found and found[attribute][0] != value:
            raise LabelConflict(
                f"reader labels {found[attribute][1]!r} and {word!r} contradict each other "
                f"({attribute}: {found[attribute][0]!r} vs {value!r}) in {text!r}"
            )
        found[attribute] = (value, word)
    return replace(ReaderAttributes(), **{a: v for a, (v, _) in found.items()})


def merge(a: ReaderAttributes, b: ReaderAttributes) -> ReaderAttributes:
    """Attributes asserted by either; a contradiction raises :class:`LabelConflict`."""
    out = {}
    for name in ReaderAttributes.__dataclass_fields__:
        va, vb = getattr(a, name), getattr(b, name)
        if va is not None and vb is not None and va != vb:
            raise LabelConflict(f"reader labels contradict each other on {name}: {va!r} vs {vb!r}")
        out[name] = va if va is not None else vb
    return ReaderAttributes(**out)
