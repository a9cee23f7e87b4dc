"""Which DICOM objects the analysis reads: CT images, seed candidates, and noduled's own objects."""

from __future__ import annotations

from pydicom.uid import (
    BasicTextSRStorage,
    ComprehensiveSRStorage,
    Comprehensive3DSRStorage,
    CTImageStorage,
    EnhancedSRStorage,
    GrayscaleSoftcopyPresentationStateStorage,
)

CT_IMAGE_STORAGE = str(CTImageStorage)
SEED_CLASSES = (  # objects that may carry a reader's seeds (or, when written by noduled, its reports)
    str(EnhancedSRStorage),
    str(ComprehensiveSRStorage),
    str(Comprehensive3DSRStorage),
    str(BasicTextSRStorage),
    str(GrayscaleSoftcopyPresentationStateStorage),
)
OUR_MANUFACTURER = "noduled"


def is_ours(manufacturer: str | None) -> bool:
    """An object (series) written by noduled, told by its Manufacturer."""
    return (manufacturer or "").strip().lower() == OUR_MANUFACTURER


def is_seed_candidate(sop_class_uid: str, manufacturer: str | None) -> bool:
    """An SR or GSPS not written by noduled: it may carry the reader's seeds."""
    return sop_class_uid in SEED_CLASSES and not is_ours(manufacturer)
