"""The PanCan (Brock University) lung-nodule malignancy risk: full model with spiculation.

McWilliams A, Tammemagi MC, Mayo JR, et al. Probability of cancer in pulmonary nodules
detected on first screening CT. N Engl J Med 2013;369:910-919 (model 2b)::

    logit = -6.7892 + 0.0287 (age - 62) + 0.6011 female + 0.2961 family history
            + 0.2953 emphysema - 5.3854 ((size_mm / 10) ** -0.5 - 1.58113883)
            - 0.1276 non-solid + 0.3770 part-solid + 0.6581 upper lobe
            - 0.0824 (nodule count - 4) + 0.7729 spiculation
    risk = 1 / (1 + exp(-logit))

NLCSP note 3: size is the maximal axial diameter (3a), family history is a parent,
sibling or child with lung cancer (3b), the count is every visible lung nodule on the
study (3c), spiculation as defined in 3d.  The baseline categories (baseline table):
< 1.5 % -> 1, 1.5 to < 6 % -> 2, 6 to < 10 % -> 3, 10 to < 30 % -> 4, >= 30 % -> 5.
"""

from __future__ import annotations

import math

INTERCEPT = -6.7892
AGE_PER_YEAR = 0.0287
AGE_CENTRE_YEARS = 62.0
FEMALE = 0.6011
FAMILY_HISTORY = 0.2961
EMPHYSEMA = 0.2953
SIZE = -5.3854
SIZE_CENTRE = 1.58113883  # (10 mm / 10) ** -0.5 ... centred at sqrt(2.5)
NON_SOLID = -0.1276
PART_SOLID = 0.3770
UPPER_LOBE = 0.6581
COUNT_PER_NODULE = -0.0824
COUNT_CENTRE = 4
SPICULATION = 0.7729

# Baseline table: (lower bound %, category, row in words), highest first.
BASELINE_RISK_BANDS: tuple[tuple[float, str, str], ...] = (
    (30.0, "5", "Baseline nodule with PanCan risk >= 30%"),
    (10.0, "4", "Baseline nodule with PanCan risk 10% to < 30%"),
    (6.0, "3", "Baseline nodule with PanCan risk 6% to < 10%"),
    (1.5, "2", "Baseline nodule with PanCan risk 1.5% to < 6%"),
    (0.0, "1", "Baseline nodule with PanCan risk < 1.5%"),
)


def pancan_logit(
    *,
    age_years: float,
    female: bool,
    family_history_lung_cancer: bool,
    emphysema: bool,
    max_axial_diameter_mm: float,
    composition: str,
    upper_lobe: bool,
    nodule_count: int,
    spiculated: bool,
) -> float:
    """The linear predictor of PanCan model 2b (see the module docstring)."""
    if not max_axial_diameter_mm > 0:
        raise ValueError(f"PanCan: max_axial_diameter_mm must be > 0 (got {max_axial_diameter_mm})")
    if nodule_count < 1:
        raise ValueError(f"PanCan: nodule_count must be >= 1 (got {nodule_count})")
    if composition not in ("solid", "part-solid", "non-solid"):
        raise ValueError(f"PanCan: composition must be solid, part-solid or non-solid (got {composition!r})")
    return float(
        INTERCEPT
        + AGE_PER_YEAR * (age_years - AGE_CENTRE_YEARS)
        + FEMALE * female
        + FAMILY_HISTORY * family_history_lung_cancer
        + EMPHYSEMA * emphysema
        + SIZE * ((max_axial_diameter_mm / 10.0) ** -0.5 - SIZE_CENTRE)
        + NON_SOLID * (composition == "non-solid")
        + PART_SOLID * (composition == "part-solid")
        + UPPER_LOBE * upper_lobe
        + COUNT_PER_NODULE * (nodule_count - COUNT_CENTRE)
        + SPICULATION * spiculated
    )


def pancan_risk(
    *,
    age_years: float,
    female: bool,
    family_history_lung_cancer: bool = False,
    emphysema: bool = False,
    max_axial_diameter_mm: float,
    composition: str = "solid",
    upper_lobe: bool = False,
    nodule_count: int = 1,
    spiculated: bool = False,
) -> float:
    """PanCan malignancy probability as a fraction in [0, 1] (multiply by 100 for %)."""
    logit = pancan_logit(
        age_years=age_years,
        female=female,
        family_history_lung_cancer=family_history_lung_cancer,
        emphysema=emphysema,
        max_axial_diameter_mm=max_axial_diameter_mm,
        composition=composition,
        upper_lobe=upper_lobe,
        nodule_count=nodule_count,
        spiculated=spiculated,
    )
    return 1.0 / (1.0 + math.exp(-logit))


def pancan_risk_pct(**kwargs: object) -> float:
    """:func:`pancan_risk` in percent."""
    return 100.0 * pancan_risk(**kwargs)  # type: ignore[arg-type]


def baseline_category_for_risk(risk_pct: float) -> tuple[str, str]:
    """The baseline-table category and row for a PanCan risk in percent."""
    for lower_pct, category, row in BASELINE_RISK_BANDS:
        if risk_pct >= lower_pct:
            return category, row
    return "1", BASELINE_RISK_BANDS[-1][2]
