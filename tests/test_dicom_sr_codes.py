"""Coded concepts: one meaning per code, private scheme only where needed."""

from highdicom.sr import CodedConcept

from dicom_sr import codes


def _all_codes():
    for name, value in vars(codes).items():
        if isinstance(value, CodedConcept):
            yield name, value
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, CodedConcept):
                    yield f"{name}[{k}]", v


def test_a_code_has_one_meaning():
    seen: dict[tuple[str, str], str] = {}
    for name, code in _all_codes():
        key = (code.value, code.scheme_designator)
        if key in seen:
            assert seen[key] == code.meaning, f"{name} reuses {key} with another meaning"
        seen[key] = code.meaning


def test_private_scheme_is_declared_and_standard_codes_are_used_for_measurements():
    assert codes.CODING_SCHEME.CodingSchemeDesignator == "99NLCSP"
    for code in (
        codes.VOLUME,
        codes.DIAMETER,
        codes.LONG_AXIS,
        codes.SHORT_AXIS,
        codes.NODULE,
        codes.LUNG,
        codes.MEAN_ATTENUATION,
        codes.IMAGING_MEASUREMENT_REPORT,
    ):
        assert code.scheme_designator in ("SCT", "DCM")
    assert {c.scheme_designator for c in codes.CATEGORIES.values()} == {"99NLCSP"}
    assert set(codes.CATEGORIES) == {"0", "1", "2", "3", "4", "5", "6"}


def test_codes_fit_their_value_representations():
    # Code Value is SH (16 characters), Code Meaning LO (64)
    for name, code in _all_codes():
        assert len(code.value) <= 16, name
        assert len(code.meaning) <= 64, name
