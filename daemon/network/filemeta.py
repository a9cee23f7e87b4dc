"""DICOM File Meta Information (PS3.10 §7.1) encoded directly, for the receive hot path.

pydicom builds the same bytes through a Dataset (~0.3 ms per instance);
writing the seven group-0002 elements by hand takes microseconds.  The
result is byte-for-byte a valid Part 10 header: 128-byte preamble, "DICM",
then explicit VR little endian elements with the group length first.
"""

from __future__ import annotations

import struct

from pydicom.uid import generate_uid

from daemon import __version__

IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["noduled", "implementation-class"])
IMPLEMENTATION_VERSION_NAME = ("NODULED_" + __version__.replace(".", "_"))[:16]


def _even(value: bytes, pad: bytes) -> bytes:
    return value + pad if len(value) % 2 else value


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", 0x0002, element)
    if vr in (b"OB", b"UN", b"SQ", b"UT"):
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _uid(value: str) -> bytes:
    return _even(value.encode("ascii"), b"\x00")


def file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """Preamble, prefix and File Meta Information for one instance."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _uid(sop_class_uid)),
            _element(0x0003, b"UI", _uid(sop_instance_uid)),
            _element(0x0010, b"UI", _uid(transfer_syntax_uid)),
            _element(0x0012, b"UI", _uid(IMPLEMENTATION_CLASS_UID)),
            _element(0x0013, b"SH", _even(IMPLEMENTATION_VERSION_NAME.encode("ascii"), b" ")),
        )
    )
    return b"\x00" * 128 + b"DICM" + _element(0x0000, b"UL", struct.pack("<I", len(body))) + body
