"""noduled: the DICOM node (see DESIGN §2)."""

__version__ = "0.1.0"
