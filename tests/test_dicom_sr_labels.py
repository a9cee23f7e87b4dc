"""Reader labels (DESIGN §6): case-insensitive whole words."""

import pytest

from dicom_sr.findings import ReaderAttributes
from dicom_sr.labels import LabelConflict, parse_labels


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("solid", "composition", "solid"),
        ("Part-Solid", "composition", "part-solid"),
        ("PS", "composition", "part-solid"),
        ("GGN", "composition", "non-solid"),
        ("ground-glass", "composition", "non-solid"),
        ("non-solid", "composition", "non-solid"),
        ("calcified", "benign_calcification", True),
        ("FAT", "fat", True),
        ("juxtapleural", "juxtapleural", True),
        ("pfn", "perifissural", True),
        ("airway-subseg", "airway", "subsegmental"),
        ("airway-seg", "airway", "segmental-or-proximal"),
        ("cyst-thin", "cyst", "thin-walled"),
        ("cyst-thick", "cyst", "thick-walled"),
        ("cyst-multi", "cyst", "multilocular"),
        ("Spiculated", "spiculated", True),
        ("infection", "infection_or_inflammation", True),
        ("suspicious", "suspicious_features", True),
        ("additional", "actionable_additional_findings", True),
        ("no-nodules", "no_nodules", True),
    ],
)
def test_each_label_sets_its_attribute(text, field, value):
    attrs = parse_labels(f"Nodule 3: {text}.")
    assert getattr(attrs, field) == value
    others = {k: v for k, v in vars(attrs).items() if k != field}
    assert all(v is None for v in others.values())


def test_whole_words_only():
    # "solidity", "fatty", "psi", "GSPS" contain labels but are not labels
    assert parse_labels("solidity fatty psi GSPS pfnx") == ReaderAttributes()
    # "part-solid" is one word: it is not "solid"
    assert parse_labels("part-solid").composition == "part-solid"


def test_several_labels_and_viewer_noise():
    attrs = parse_labels("cornerstoneTools@^4.0.0:Length  PS pfn SPICULATED area 12.3 mm2")
    assert (attrs.composition, attrs.perifissural, attrs.spiculated) == ("part-solid", True, True)
    assert parse_labels(None) == ReaderAttributes() == parse_labels("")


def test_contradicting_labels_are_an_error():
    with pytest.raises(LabelConflict, match="'solid' and 'ggn'"):
        parse_labels("solid ggn")
    # repeating the same assertion is fine
    assert parse_labels("ggn ground-glass").composition == "non-solid"
