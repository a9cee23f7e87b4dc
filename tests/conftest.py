"""Shared fixtures: real servers started per test, stopped afterwards."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import NodedServer, OrthancServer


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: run the tests with 'make test', which installs it")


@pytest.fixture
def noduled_server(tmp_path: Path) -> Iterator[Callable[..., NodedServer]]:
    """Factory: ``noduled_server(extra_config)`` starts ``noduled serve``; all are stopped at the end."""
    started: list[NodedServer] = []

    def make(extra: dict | None = None, *, name: str = "node", start: bool = True) -> NodedServer:
        server = NodedServer(tmp_path / name, extra=extra)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Callable[..., OrthancServer]]:
    """Factory: ``orthanc(modalities)`` starts a real Orthanc; stopped at the end."""
    _require("Orthanc")
    started: list[OrthancServer] = []

    def make(modalities: dict | None = None, *, name: str = "orthanc") -> OrthancServer:
        server = OrthancServer(tmp_path / name, modalities=modalities)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def dcmtk() -> None:
    for tool in ("storescu", "echoscu", "dciodvfy"):
        _require(tool)
