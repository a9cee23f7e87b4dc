"""Real servers for the integration tests: noduled, Orthanc and DCMTK's storescp.

Each runs as its own process on 127.0.0.1 with a free port and a private
data directory, and is stopped (or killed) by the test that started it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODULED = str(Path(sys.executable).with_name("noduled"))


_HANDED_OUT: set[int] = set()


def _worker_slot() -> tuple[int, int]:
    """(this pytest-xdist worker's index, the number of workers); (0, 1) without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return 0, 1
    return int(worker[2:]) % count, count


def free_port() -> int:
    """A port free on 127.0.0.1 now, never handed out before in this process.

    Under pytest-xdist the workers share one loopback (one network namespace): each worker
    takes only its share of the ports (``(port // 2) % workers == its index``), so two
    workers never pick the same port between a free_port() and the server's bind.  (Pairs of
    ports, not parity: Linux gives bind(0) one parity and connect()'s source ports the other.)
    """
    index, count = _worker_slot()
    for _ in range(10_000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if (port // 2) % count == index and port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free port for worker {index} of {count}")


def wait_for_port(port: int, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something listens on ``port``; a ``proc`` that exits first fails at once.  The generous
    timeout is for a loaded machine (a server's start is not what the tests measure)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_toml(path: Path, config: dict) -> Path:
    """Write a (two-level) config dict as TOML; lists of dicts become arrays of tables."""
    lines = []
    for section, body in config.items():
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
        else:
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class NodedServer:
    """``noduled serve`` in a subprocess with its own data directory and port."""

    def __init__(self, workdir: Path, *, ae_title: str = "NODULED", extra: dict | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ae_title = ae_title
        self.data_dir = self.workdir / "var"
        config = {
            "scp": {"ae_title": ae_title, "port": self.port, "host": "127.0.0.1"},
            "storage": {"data_dir": str(self.data_dir), "min_free_disk_mb": 0},
            "http": {"enabled": False},
            "logging": {"level": "INFO"},
        }
        for section, body in (extra or {}).items():
            if isinstance(body, dict):
                config.setdefault(section, {}).update(body)
            else:
                config[section] = body
        self.config_path = write_toml(self.workdir / "noduled.toml", config)
        self.log_path = self.workdir / "noduled.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> NodedServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODULED_")}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [NODULED, "serve", "--config", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)  # then SIGKILL (-9): a stop that hangs still fails the tests that check it
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict:
        out = subprocess.run(
            [NODULED, "status", "--json", "--config", str(self.config_path)], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)


class OrthancServer:
    """A real Orthanc PACS (Debian package) with its own storage and ports."""

    def __init__(
        self, workdir: Path, *, aet: str = "ORTHANC", modalities: dict | None = None, dicom_port: int | None = None
    ) -> None:
        if shutil.which("Orthanc") is None:
            raise RuntimeError("Orthanc is not installed (make test installs the Debian package 'orthanc')")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = dicom_port or free_port()
        self.aet = aet
        self.config = {
            "Name": "noduled-test-orthanc",
            "StorageDirectory": str(self.workdir / "db"),
            "IndexDirectory": str(self.workdir / "db"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomModalities": modalities or {},
            "Plugins": [],
            "StableAge": 1,
            "HttpTimeout": 120,
            "DicomScuTimeout": 60,
            "LoadPrivateDictionary": False,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> OrthancServer:
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(self.config, indent=1))
        self._log = open(self.workdir / "orthanc.log", "ab")
        self.proc = subprocess.Popen(
            ["Orthanc", str(cfg)], stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        wait_for_port(self.http_port, timeout_s=60, proc=self.proc)
        wait_for_port(self.dicom_port, timeout_s=60, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # --- REST ------------------------------------------------------------
    def rest(self, method: str, path: str, body: bytes | dict | None = None, timeout: float = 120) -> object:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as rsp:
            payload = rsp.read()
        try:
            return json.loads(payload)
        except ValueError:
            return payload

    def upload(self, paths: list[Path]) -> list[dict]:
        return [self.rest("POST", "/instances", Path(p).read_bytes()) for p in paths]  # type: ignore[misc]


class StoreSCP:
    """DCMTK storescp writing every instance to disk (the benchmark's reference)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> StoreSCP:
        env = dict(os.environ, TCP_NODELAY="1")
        self.proc = subprocess.Popen(
            ["storescp", "--aetitle", "STORESCP", "--output-directory", str(self.out_dir), str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the 'postgres' user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (make test installs the Debian package 'postgresql')")
    return str(found[-1])


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (Debian package binaries)."""

    def __init__(self) -> None:
        import tempfile

        # its own folder outside pytest's (0700, root-owned) temporary tree: the server runs as 'postgres'
        self.workdir = Path(tempfile.mkdtemp(prefix="noduled-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://noduled@127.0.0.1:{self.port}/noduled"

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user(
                [postgres_bin("initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "noduled", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )
        self._log = open(self.workdir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            _as_postgres_user(
                [
                    postgres_bin("postgres"),
                    "-D",
                    str(self.datadir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.workdir),
                    "-F",
                ]
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout_s=60, proc=self.proc)
        import psycopg

        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=noduled dbname=postgres", autocommit=True
                ) as conn:
                    conn.execute("CREATE DATABASE noduled")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)


class RedisServer:
    """A throw-away Redis on 127.0.0.1 (Debian package redis-server)."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("Redis is not installed (make test installs the Debian package 'redis-server')")
        self.workdir = Path(workdir)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class NodedWorker:
    """``noduled worker`` on the configuration of a :class:`NodedServer`."""

    def __init__(self, server: NodedServer, *, config_path: Path | None = None, name: str = "worker") -> None:
        self.server = server
        self.config_path = config_path or server.config_path  # another configuration (e.g. without destinations)
        self.log_path = server.workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> NodedWorker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODULED_")}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [NODULED, "worker", "--config", str(self.config_path), "--workers", "1"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.server.workdir,
        )
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: a worker machine that dies mid-analysis
        self.proc.wait()
