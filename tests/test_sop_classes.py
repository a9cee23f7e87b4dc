"""daemon.analysis.sop_classes: one list of what the node takes, what it reads as seeds, and what is its own."""

from __future__ import annotations

from pathlib import Path

from daemon.analysis.sop_classes import SEED_CLASSES, STORAGE_CLASSES, is_noduled_object, is_seed_candidate
from dicom_sr.seeds import PS_SOP_CLASSES, SR_SOP_CLASSES


def test_every_class_the_seed_reader_reads_is_a_seed_class_and_none_else() -> None:
    assert set(SEED_CLASSES) == set(SR_SOP_CLASSES) | set(PS_SOP_CLASSES)


def test_the_storage_scp_accepts_every_seed_class(tmp_path: Path) -> None:
    from daemon.network.scp import StorageSCP
    from daemon.settings import SCPSettings
    from daemon.storage.archive import Archive
    from daemon.storage.db import open_index

    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    scp = StorageSCP(SCPSettings(), Archive(tmp_path / "archive", engine))
    accepted = {str(cx.abstract_syntax) for cx in scp.ae.supported_contexts}
    assert set(SEED_CLASSES) <= accepted
    assert set(STORAGE_CLASSES) <= accepted
    engine.dispose()


def test_our_objects_are_told_by_manufacturer_whatever_its_case_and_padding() -> None:
    assert is_noduled_object("noduled") and is_noduled_object(" Noduled ") and is_noduled_object("NODULED")
    assert not is_noduled_object(None) and not is_noduled_object("") and not is_noduled_object("noduled-viewer")


def test_a_seed_candidate_is_a_seed_class_not_written_by_noduled() -> None:
    extensible_sr, colour_ps, ct = (
        "1.2.840.10008.5.1.4.1.1.88.35",
        "1.2.840.10008.5.1.4.1.1.11.2",
        "1.2.840.10008.5.1.4.1.1.2",
    )
    assert is_seed_candidate(extensible_sr, "OHIF") and is_seed_candidate(colour_ps, None)
    assert not is_seed_candidate(extensible_sr, "noduled")
    assert not is_seed_candidate(ct, "OHIF")
