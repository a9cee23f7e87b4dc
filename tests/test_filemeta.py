"""daemon.network.filemeta: the hand-encoded Part 10 header equals what pydicom writes and reads back."""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from daemon.network.filemeta import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, file_meta_bytes
from tests.support.ct_series import ct_slice


def test_header_reads_back_with_every_element() -> None:
    ds = ct_slice("1.2.3", "1.2.3.4", 0, np.zeros((4, 4), np.int16))
    for ts in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
        data = file_meta_bytes(ds.SOPClassUID, ds.SOPInstanceUID, ts)
        meta = dcmread(io.BytesIO(data), force=True).file_meta
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.TransferSyntaxUID == ts
        assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
        assert meta.FileMetaInformationVersion == b"\x00\x01"


def test_same_bytes_as_pydicom() -> None:
    from pynetdicom.dsutils import create_file_meta

    odd_uid = "1.2.840.10008.5.1.4.1.1.2"  # odd length: padded with NUL
    meta = create_file_meta(
        sop_class_uid=odd_uid,
        sop_instance_uid="1.2.3.45",
        transfer_syntax=ExplicitVRLittleEndian,
        implementation_uid=IMPLEMENTATION_CLASS_UID,
        implementation_version=IMPLEMENTATION_VERSION_NAME,
    )
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta)
    assert file_meta_bytes(odd_uid, "1.2.3.45", ExplicitVRLittleEndian) == buf.getvalue()
