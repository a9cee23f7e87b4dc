"""Which DICOM objects the node takes, which of them the analysis reads, and which are noduled's own.

The one home of these lists (pydicom's UID constants): the Storage SCP accepts
:data:`STORAGE_CLASSES`, a C-GET offers them, the workflow reads CT images
(:data:`CT_IMAGE_STORAGE`) and seed candidates (:data:`SEED_CLASSES`: every SR and softcopy
presentation state class ``dicom_sr.seeds`` can read), and :func:`is_noduled_object` tells
noduled's own SR/SEG from everyone else's.
"""

from __future__ import annotations

from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    ColorSoftcopyPresentationStateStorage,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedSRStorage,
    EnhancedXRayRadiationDoseSRStorage,
    ExtensibleSRStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    KeyObjectSelectionDocumentStorage,
    PseudoColorSoftcopyPresentationStateStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    XRayRadiationDoseSRStorage,
)

CT_IMAGE_STORAGE: UID = CTImageStorage
SR_CLASSES: tuple[UID, ...] = (
    BasicTextSRStorage,
    EnhancedSRStorage,
    ComprehensiveSRStorage,
    Comprehensive3DSRStorage,
    ExtensibleSRStorage,
)
PRESENTATION_STATE_CLASSES: tuple[UID, ...] = (
    GrayscaleSoftcopyPresentationStateStorage,
    ColorSoftcopyPresentationStateStorage,
    PseudoColorSoftcopyPresentationStateStorage,
)
SEED_CLASSES: tuple[UID, ...] = SR_CLASSES + PRESENTATION_STATE_CLASSES  # may carry a reader's seeds (or our reports)
STORAGE_CLASSES: tuple[UID, ...] = (
    CTImageStorage,
    EnhancedCTImageStorage,
    *SEED_CLASSES,
    SegmentationStorage,
    KeyObjectSelectionDocumentStorage,
    # accepted so that a whole CT study can be forwarded; archived, not analysed (the dose SRs are
    # read into the registry's exam record when the study is analysed: daemon.storage.registry)
    XRayRadiationDoseSRStorage,
    EnhancedXRayRadiationDoseSRStorage,
    SecondaryCaptureImageStorage,
)
OUR_MANUFACTURER = "noduled"  # the Manufacturer of every object noduled writes


def is_noduled_object(manufacturer: str | None) -> bool:
    """An object (or series) written by noduled, told by its Manufacturer (case and padding ignored)."""
    return (manufacturer or "").strip().lower() == OUR_MANUFACTURER


def is_seed_candidate(sop_class_uid: str, manufacturer: str | None) -> bool:
    """An SR or presentation state not written by noduled: it may carry the reader's seeds."""
    return sop_class_uid in SEED_CLASSES and not is_noduled_object(manufacturer)
