"""Shared fixtures: real servers started per test, stopped afterwards."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import NodedServer, OrthancServer

# The slowest test modules, slowest first (seconds of a serial run, 2026-12-02, under load).  The
# suite runs on pytest-xdist workers a module at a time in collection order (Makefile: --dist loadscope
# --no-loadscope-reorder): starting the longest modules first lets the workers finish together
# (longest-processing-time-first).  Only the order changes; a module missing here runs after these.
SLOW_MODULES_FIRST = (
    "tests/integration/test_priors_pipeline.py",  # 330
    "tests/integration/test_pipeline_orthanc.py",  # 259
    "tests/integration/test_scaleout.py",  # 125
    "tests/integration/test_delivery_node.py",  # 99
    "tests/viewer/test_ohif.py",  # 84
    "tests/test_segmentation_register.py",  # 54
    "tests/integration/test_receive_attacks.py",  # 53
    "tests/integration/test_receive.py",  # 49
    "tests/integration/test_receive_faults.py",  # 48
    "tests/test_comparison.py",  # 39
    "tests/integration/test_registry_orthanc.py",  # 32
    "tests/integration/test_protocol_pipeline.py",  # 27
    "tests/test_dicom_sr_seeds_ohif.py",  # 22
    "tests/integration/test_late_data.py",  # 22
    "tests/test_segmentation_real_nodules.py",  # 20
    "tests/integration/test_priors_orthanc.py",  # 17
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: the rest keep their order


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
