"""daemon.network.status: the words of DIMSE status codes are the standard's (pynetdicom's tables)."""

from __future__ import annotations

from daemon.network.status import is_store_success, status_text


def test_status_words_per_service() -> None:
    assert status_text(0xA801, "move") == "0xA801 Move destination unknown"
    assert status_text(0xA700, "store") == "0xA700 Refused: Out of Resources"
    assert status_text(0x0122, "find") == "0x0122 Refused: SOP Class Not Supported"
    assert status_text(0xC0FF, "get").startswith("0xC0FF ")  # a failure code no table names: still one line


def test_store_success_includes_warnings_and_nothing_else() -> None:
    assert all(is_store_success(c) for c in (0x0000, 0x0001, 0xB000, 0xB006, 0xB007))
    assert not any(is_store_success(c) for c in (0xA700, 0xA900, 0xC000, 0x0122, 0xFE00))
