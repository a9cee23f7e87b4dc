"""DIMSE status codes in words, from pynetdicom's status tables (one table for every SCU of the node)."""

from __future__ import annotations

from typing import Literal

from pynetdicom import status as _status

Service = Literal["find", "move", "get", "store"]

_TABLES: dict[Service, dict[int, tuple[str, str]]] = {
    "find": _status.QR_FIND_SERVICE_CLASS_STATUS,
    "move": _status.QR_MOVE_SERVICE_CLASS_STATUS,
    "get": _status.QR_GET_SERVICE_CLASS_STATUS,
    "store": _status.STORAGE_SERVICE_CLASS_STATUS,
}


def status_description(code: int, service: Service) -> str:
    """What the standard calls ``code`` for ``service`` ("Refused: Out of Resources"), else its category."""
    known = _TABLES[service].get(code) or _status.GENERAL_STATUS.get(code)
    if known is not None and known[1]:
        return known[1]
    category = _status.code_to_category(code)
    return category if category != "Unknown" else "unknown status"


def status_text(code: int, service: Service) -> str:
    """``code`` and its description: "0xA801 Move destination unknown"."""
    return f"0x{code:04X} {status_description(code, service)}"


def is_store_success(code: int) -> bool:
    """Success or a C-STORE warning (0xB000, 0xB006, 0xB007, 0x0001): the peer has the object."""
    return _status.code_to_category(code) in (_status.STATUS_SUCCESS, _status.STATUS_WARNING)
