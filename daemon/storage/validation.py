"""What the node checks before it acknowledges an instance (issue 17: validate what is acknowledged).

pydicom reads leniently: a data set cut short, an element whose length runs
past the end of the data, or pixel data shorter than the image it describes
all "parse" (pydicom returns what is there, often without a warning), and a
node that acknowledged them would hold files nobody can read back, while the
sender, having been told Success, never sends them again.  So the encoded
data set is walked here element by element, as a reader of the file will walk
it, before the success status:

- :func:`check_structure`: every element header is complete, no element's
  length runs past its enclosing item or the data set, sequences and items
  are delimited, and encapsulated pixel data is a Basic Offset Table item
  followed by fragment items and a sequence delimiter (PS3.5 A.4).  It
  returns where the pixel data is and how long it is.
- :func:`check_pixel_data`: for native (uncompressed) transfer syntaxes the
  pixel data length is Rows x Columns x Samples per Pixel x Bits Allocated / 8
  x Number of Frames (plus one pad byte to even length, PS3.5 8.1.1); an image
  SOP class without pixel data is refused too (a data set cut at an element
  boundary).
- :func:`inflate_bounded`: a deflated data set (1.2.840.10008.1.2.1.99) is
  inflated with an upper bound on its size (a few kilobytes can inflate to
  gigabytes).

Each problem raises :class:`DatasetProblem` naming it, e.g.
``element (7FE0,0010) declares 524288 bytes but 324288 remain``.  The walk
reads tags and lengths only (about 0.1 ms for a CT image); values are decoded
by pydicom as before.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR

DEFLATED_EXPLICIT_LE = "1.2.840.10008.1.2.1.99"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
NATIVE_SYNTAXES = frozenset({IMPLICIT_LE, "1.2.840.10008.1.2.1", DEFLATED_EXPLICIT_LE, EXPLICIT_BE})

PIXEL_DATA = 0x7FE00010
_PIXEL_TAGS = (PIXEL_DATA, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float Pixel Data, Double Float Pixel Data
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_VRS = _LONG_VRS | {
    vr.encode()
    for vr in [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "SL",
        "SS",
        "ST",
        "TM",
        "UI",
        "UL",
        "US",
    ]
}
# binary VRs whose value is a whole number of fixed-size numbers (a length that is not is corrupt)
_UNIT = {b"US": 2, b"SS": 2, b"UL": 4, b"SL": 4, b"FL": 4, b"AT": 4, b"FD": 8, b"SV": 8, b"UV": 8}
_MAX_DEPTH = 64  # nested sequences; deeper is refused rather than recursed into

# SOP classes whose data sets must carry pixel data (a data set cut short before it is refused)
IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    }
)


class DatasetProblem(ValueError):
    """The encoded data set is not what a reader can read back; the message names the problem."""


@dataclass(frozen=True)
class Structure:
    """What the walk found at the top level of the data set."""

    pixel_tag: int | None  # Pixel Data (or float variant) tag, None when absent
    pixel_length: int | None  # its value length; None when encapsulated (undefined length)
    fragments: int  # encapsulated: number of fragments after the Basic Offset Table
    attrs: dict[str, int | str | None]  # the Image Pixel module's values at the top level, by keyword


# top-level (0028,xxxx) elements read during the walk (cheaper than asking pydicom for each): tag -> (keyword, kind)
_PIXEL_ATTRS = {
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280006: ("PlanarConfiguration", "US"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"),
}


def inflate_bounded(data: bytes, limit_bytes: int) -> bytes:
    """Inflate a deflated data set (raw deflate, PS3.5 A.5), refusing more than ``limit_bytes``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit_bytes + 1)
    except zlib.error as exc:
        raise DatasetProblem(f"deflated data set does not inflate: {exc}") from None
    if len(out) > limit_bytes or inflater.unconsumed_tail:
        raise DatasetProblem(f"deflated data set inflates to more than {limit_bytes // (1024 * 1024)} MB (refused)")
    if not inflater.eof:
        raise DatasetProblem("deflated data set is cut short (the deflate stream does not end)")
    return out


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Walker:
    def __init__(self, buf: bytes | memoryview, *, explicit: bool, little: bool) -> None:
        self.buf = buf
        self.explicit = explicit
        self.e = "<" if little else ">"
        self._explicit_head = struct.Struct(self.e + "HH2sH")  # group, element, VR, 16-bit length
        self._implicit_head = struct.Struct(self.e + "HH0sH")  # group, element (the rest read separately)
        self._u32 = struct.Struct(self.e + "L")
        self.pixel_tag: int | None = None
        self.pixel_length: int | None = None
        self.fragments = 0
        self.attrs: dict[str, int | str | None] = {}

    def _keep(self, tag: int, value: bytes | memoryview) -> None:
        keyword, kind = _PIXEL_ATTRS[tag]
        if kind == "US":
            self.attrs[keyword] = struct.unpack(self.e + "H", value)[0] if len(value) == 2 else None
            return
        text = bytes(value).decode("ascii", "replace").strip(" \x00")
        if kind == "IS":
            try:
                self.attrs[keyword] = int(text)
            except ValueError:
                self.attrs[keyword] = None
        else:
            self.attrs[keyword] = text

    def _head(self, pos: int, end: int) -> tuple[int, int]:
        if end - pos < 8:
            raise DatasetProblem(
                f"data set is cut short: {end - pos} bytes left at offset {pos}, an element header needs 8"
            )
        group, element = struct.unpack_from(self.e + "HH", self.buf, pos)
        return (group << 16) | element, group

    def elements(
        self,
        pos: int,
        end: int,
        depth: int,
        *,
        explicit: bool | None = None,
        until_item_end: bool = False,
        top: bool = False,
    ) -> int:
        """Walk elements in [pos, end); with ``until_item_end`` stop after an Item Delimitation Item."""
        explicit = self.explicit if explicit is None else explicit
        if depth > _MAX_DEPTH:
            raise DatasetProblem(f"sequences nested more than {_MAX_DEPTH} deep")
        buf = self.buf
        head = self._explicit_head if explicit else self._implicit_head
        u32 = self._u32
        while pos < end:
            if end - pos < 8:
                self._head(pos, end)  # raises: the header is cut short
            group, element, vr, length = head.unpack_from(buf, pos)  # (implicit: vr is b"", length is 0)
            tag = (group << 16) | element
            if tag == _ITEM_END:
                if not until_item_end:
                    raise DatasetProblem(f"item delimiter at offset {pos} outside an item of undefined length")
                return pos + 8
            if group == 0xFFFE:
                raise DatasetProblem(f"unexpected item tag {_tag_text(tag)} among elements at offset {pos}")
            if explicit:
                if vr not in _VRS:
                    raise DatasetProblem(f"element {_tag_text(tag)} at offset {pos} has no valid VR ({vr!r})")
                if vr in _LONG_VRS:
                    if end - pos < 12:
                        raise DatasetProblem(f"element {_tag_text(tag)} header is cut short at offset {pos}")
                    (length,) = u32.unpack_from(buf, pos + 8)
                    pos += 12
                else:
                    pos += 8
            else:
                (length,) = u32.unpack_from(buf, pos + 4)
                pos += 8
                vr = b"SQ" if length == _UNDEFINED else _dictionary_vr(tag)
            if length == _UNDEFINED:
                if tag in _PIXEL_TAGS and vr in (b"OB", b"OW", b"??", b"SQ") and top:
                    pos = self._fragments(pos, end, tag)
                elif vr == b"SQ":
                    pos = self._items(pos, end, depth, undefined=True, explicit=explicit)
                elif vr == b"UN":  # UN of undefined length: a sequence in implicit VR little endian (PS3.5 6.2.2)
                    pos = self._items(pos, end, depth, undefined=True, explicit=False)
                else:
                    raise DatasetProblem(
                        f"element {_tag_text(tag)} ({vr.decode(errors='replace')}) has undefined length"
                    )
                continue
            if length > end - pos:
                raise DatasetProblem(
                    f"element {_tag_text(tag)} declares {length} bytes but {end - pos} remain (data set cut short or corrupt)"
                )
            if vr == b"SQ" and length:
                self._items(pos, pos + length, depth, undefined=False, explicit=explicit)
            elif length % _UNIT.get(vr, 1):
                raise DatasetProblem(
                    f"element {_tag_text(tag)} ({vr.decode()}) is {length} bytes, not a whole number of values"
                )
            if top and group == 0x0028 and tag in _PIXEL_ATTRS:
                self._keep(tag, buf[pos : pos + length])
            if top and tag in _PIXEL_TAGS:
                self.pixel_tag, self.pixel_length = tag, length
            pos += length
        if until_item_end:
            raise DatasetProblem("item of undefined length has no item delimiter (data set cut short)")
        return pos

    def _items(self, pos: int, end: int, depth: int, *, undefined: bool, explicit: bool) -> int:
        while pos < end:
            tag, _ = self._head(pos, end)
            (length,) = struct.unpack_from(self.e + "L", self.buf, pos + 4)
            pos += 8
            if tag == _SEQ_END:
                if not undefined:
                    raise DatasetProblem(f"sequence delimiter at offset {pos - 8} in a sequence of defined length")
                return pos
            if tag != _ITEM:
                raise DatasetProblem(f"sequence holds {_tag_text(tag)} at offset {pos - 8} where an item should be")
            if length == _UNDEFINED:
                pos = self.elements(pos, end, depth + 1, explicit=explicit, until_item_end=True)
            else:
                if length > end - pos:
                    raise DatasetProblem(f"sequence item declares {length} bytes but {end - pos} remain")
                self.elements(pos, pos + length, depth + 1, explicit=explicit)
                pos += length
        if undefined:
            raise DatasetProblem("sequence of undefined length has no sequence delimiter (data set cut short)")
        return pos

    def _fragments(self, pos: int, end: int, tag: int) -> int:
        """Encapsulated pixel data: Basic Offset Table item, fragment items, sequence delimiter (PS3.5 A.4)."""
        items = 0
        while pos < end:
            item, _ = self._head(pos, end)
            (length,) = struct.unpack_from(self.e + "L", self.buf, pos + 4)
            pos += 8
            if item == _SEQ_END:
                if items < 2:
                    raise DatasetProblem("encapsulated pixel data has no fragment after the Basic Offset Table")
                self.pixel_tag, self.pixel_length, self.fragments = tag, None, items - 1
                return pos
            if item != _ITEM or length == _UNDEFINED:
                raise DatasetProblem(
                    f"encapsulated pixel data holds {_tag_text(item)} at offset {pos - 8}, not a fragment item"
                )
            if length > end - pos:
                raise DatasetProblem(f"pixel data fragment declares {length} bytes but {end - pos} remain (cut short)")
            if items == 0 and length % 4:
                raise DatasetProblem(f"Basic Offset Table is {length} bytes, not a multiple of 4")
            items += 1
            pos += length
        raise DatasetProblem("encapsulated pixel data has no sequence delimiter (data set cut short)")


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> bytes:
    """The VR an implicit VR data set implies for ``tag`` (b"??" when unknown or ambiguous)."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return b"??"
    return vr.encode() if len(vr) == 2 else b"??"  # "US or SS" and the like: no fixed unit


def check_structure(dataset: bytes | memoryview, transfer_syntax: str) -> Structure:
    """Walk an encoded data set (no preamble or file meta; deflated ones inflated first)."""
    walker = _Walker(dataset, explicit=transfer_syntax != IMPLICIT_LE, little=transfer_syntax != EXPLICIT_BE)
    walker.elements(0, len(dataset), 0, top=True)
    return Structure(walker.pixel_tag, walker.pixel_length, walker.fragments, walker.attrs)


def _int(value: object, default: int | None = None) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return default


def check_pixel_data(structure: Structure, transfer_syntax: str, sop_class_uid: str) -> None:
    """Pixel data present for image SOP classes, and of the size the image attributes describe (native)."""
    get = structure.attrs.get
    if structure.pixel_tag is None:
        if sop_class_uid in IMAGE_SOP_CLASSES:
            raise DatasetProblem("image data set has no Pixel Data (7FE0,0010) (cut short?)")
        return
    if structure.pixel_tag != PIXEL_DATA:
        return  # float pixel data: not used by the SOP classes received here
    _check_image_pixel_module(get)
    if transfer_syntax not in NATIVE_SYNTAXES:
        if structure.pixel_length is not None:
            raise DatasetProblem(f"Pixel Data of transfer syntax {transfer_syntax} is not encapsulated")
        return
    if structure.pixel_length is None:
        raise DatasetProblem(f"Pixel Data is encapsulated but the transfer syntax {transfer_syntax} is native")
    rows, cols, bits = _int(get("Rows")), _int(get("Columns")), _int(get("BitsAllocated"))
    assert rows is not None and cols is not None and bits is not None  # checked above
    samples = _int(get("SamplesPerPixel"), 1) or 1
    frames = _int(get("NumberOfFrames"), 1) or 1
    expected = (rows * cols * samples * frames * bits + 7) // 8
    actual = structure.pixel_length
    if actual not in (expected, expected + (expected & 1)):
        raise DatasetProblem(
            f"Pixel Data is {actual} bytes; Rows {rows} x Columns {cols} x Samples {samples} x "
            f"Bits Allocated {bits} x Frames {frames} need {expected}"
        )


# Image Pixel module (PS3.3 C.7.6.3): what a reader needs to decode the pixel data, Type 1
_PIXEL_MODULE = (
    ("Rows", "(0028,0010)"),
    ("Columns", "(0028,0011)"),
    ("SamplesPerPixel", "(0028,0002)"),
    ("BitsAllocated", "(0028,0100)"),
    ("BitsStored", "(0028,0101)"),
    ("PixelRepresentation", "(0028,0103)"),
)


_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "HSV",
        "ARGB",
        "CMYK",
        "XYB",
    }
)


def _check_image_pixel_module(get: Any) -> None:
    values: dict[str, int] = {}
    for keyword, tag in _PIXEL_MODULE:
        try:
            value = _int(get(keyword))
        except Exception:  # noqa: BLE001 - a value pydicom cannot convert
            value = None
        if value is None:
            raise DatasetProblem(f"data set has Pixel Data but no valid {keyword} {tag}")
        values[keyword] = value
    try:
        photometric = str(get("PhotometricInterpretation") or "").strip()
    except Exception:  # noqa: BLE001
        photometric = ""
    if not photometric:
        raise DatasetProblem("data set has Pixel Data but no Photometric Interpretation (0028,0004)")
    if photometric not in _PHOTOMETRIC:
        raise DatasetProblem(
            f"Photometric Interpretation {photometric[:20]!r} is not a defined term (PS3.3 C.7.6.3.1.2)"
        )
    if values["Rows"] <= 0 or values["Columns"] <= 0:
        raise DatasetProblem(f"Rows {values['Rows']} x Columns {values['Columns']} is not an image")
    if values["SamplesPerPixel"] not in (1, 3, 4):
        raise DatasetProblem(f"Samples per Pixel is {values['SamplesPerPixel']}, not 1 or 3")
    if values["BitsAllocated"] not in (1, 8, 16, 32, 64):
        raise DatasetProblem(f"Bits Allocated is {values['BitsAllocated']}, not 1, 8, 16, 32 or 64")
    if not 0 < values["BitsStored"] <= values["BitsAllocated"]:
        raise DatasetProblem(f"Bits Stored is {values['BitsStored']}, Bits Allocated {values['BitsAllocated']}")
    if values["PixelRepresentation"] not in (0, 1):
        raise DatasetProblem(f"Pixel Representation is {values['PixelRepresentation']}, not 0 or 1")
    if values["SamplesPerPixel"] > 1 and _int(get("PlanarConfiguration")) not in (0, 1):
        raise DatasetProblem("colour Pixel Data without a valid Planar Configuration (0028,0006)")
    try:
        frames = get("NumberOfFrames")
    except Exception:  # noqa: BLE001
        frames = "?"
    if frames not in (None, "") and (_int(frames) or 0) < 1:
        raise DatasetProblem(f"Number of Frames {frames!r} is not a positive number")
