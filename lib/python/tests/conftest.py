"""Fixtures: a real toriid against a real PostgreSQL (the suite's shared cluster).

Environment (tools/test and ctest set them; see docs/python.md):

- ``TORII_TEST_PGHOST``, ``TORII_TEST_PGPORT``, ``TORII_TEST_PGUSER``: the
  throwaway cluster tools/test starts (a Unix socket folder, a port, a superuser).
- ``TORII_TORIID_BIN``: the toriid binary to test (``build/<preset>/daemon/toriid``).

Without them the fixtures fail with a message saying what is missing (the
tests never run against anything but a real daemon and database). Each test
module gets its own database (``CREATE DATABASE ... TEMPLATE template0`` through
the ``psql`` binary) and its daemons run on free ports in a temporary folder,
with their logs kept there until the daemon fixture ends.
"""
from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # lib/python: the package, installed or not

import torii_client  # noqa: E402


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: run the suite through tools/test (or ctest), "
                    f"or set TORII_TEST_PGHOST/PORT/USER and TORII_TORIID_BIN (docs/python.md)", pytrace=False)
    return value


class Cluster:
    """The shared test cluster: a Unix socket folder (or host), a port, a superuser."""

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user

    def conninfo(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def psql(self, dbname: str, sql: str, timeout: float = 60) -> str:
        """Runs SQL with psql (ON_ERROR_STOP); returns its unaligned output."""
        r = subprocess.run(["psql", self.conninfo(dbname), "-X", "-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout.strip()

    def create_database(self) -> str:
        """A new, uniquely named database; returns its conninfo."""
        name = f"py_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        # template0: nobody is ever connected to it, so parallel CREATEs do not clash.
        self.psql("postgres", f"CREATE DATABASE {name} TEMPLATE template0")
        return self.conninfo(name)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except OSError:
        return 32768


def free_port() -> int:
    """A bindable port below the kernel's ephemeral range (as the C++ tests'
    FreePort: a port from bind(0) could be taken by any client's connect())."""
    high = _ephemeral_low() - 1
    for _ in range(200):
        port = random.randint(10000, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("cannot find a free port")


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: no daemon outlives the test run, even when pytest crashes.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def toml_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Daemon:
    """The real toriid as a child process: a config in a fresh temporary folder
    (requests and events on free tcp ports, the given database, ``settings``
    "section.key" -> TOML value text on top), its output in a log file there.
    ``start()`` waits until ``ping`` answers (through ``ready_client``)."""

    def __init__(self, binary: str, database_url: str, settings: Optional[Dict[str, str]] = None,
                 ready_curve: Optional[torii_client.CurveKeys] = None, start: bool = True) -> None:
        self.binary = binary
        self.database_url = database_url
        self.dir = tempfile.mkdtemp(prefix="toriid-py-")
        self.request_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.event_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.config_path = os.path.join(self.dir, "toriid.toml")
        self.log_path = os.path.join(self.dir, "toriid.log")
        self.ready_curve = ready_curve
        self.proc: Optional[subprocess.Popen] = None
        sections: Dict[str, Dict[str, str]] = {
            "server": {"requests": f"[{toml_string(self.request_endpoint)}]",
                       "events": f"[{toml_string(self.event_endpoint)}]"},
            "database": {"url": toml_string(database_url)},
            "log": {"level": toml_string("info")},
        }
        for key, value in (settings or {}).items():
            section, _, name = key.partition(".")
            sections.setdefault(section, {})[name] = value
        with open(self.config_path, "w") as f:
            f.write("# written by lib/python/tests/conftest.py\n")
            for section, keys in sections.items():
                f.write(f"\n[{section}]\n")
                for k, v in keys.items():
                    f.write(f"{k} = {v}\n")
        if start:
            self.start()

    def start(self, ready_timeout_s: float = 60) -> None:
        if self.running():
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "--config", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.wait_ready(ready_timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with torii_client.Client(self.request_endpoint, curve=self.ready_curve) as c:
            while True:
                if not self.running():
                    raise RuntimeError(f"toriid exited with status {self.proc.returncode if self.proc else '?'} "
                                       f"before answering ping; log:\n{self.log_tail()}")
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    raise RuntimeError(f"toriid did not answer ping within {timeout_s} s; log:\n{self.log_tail()}")
                try:
                    c.ping(timeout=min(left_ms / 1000, 0.5))
                    return
                except torii_client.Timeout:
                    continue

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout_s: float = 30) -> Optional[int]:
        """SIGTERM, wait; returns the exit status (SIGKILLs after the timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return Cluster(_env("TORII_TEST_PGHOST"), int(_env("TORII_TEST_PGPORT")), _env("TORII_TEST_PGUSER"))


@pytest.fixture(scope="session")
def toriid_bin() -> str:
    path = _env("TORII_TORIID_BIN")
    if not os.access(path, os.X_OK):
        pytest.fail(f"TORII_TORIID_BIN={path} is not an executable", pytrace=False)
    return path


@pytest.fixture(scope="module")
def database(cluster: Cluster) -> str:
    """A fresh database for the test module; its conninfo."""
    return cluster.create_database()


@pytest.fixture(scope="module")
def daemon_factory(toriid_bin: str):
    """Makes daemons (closed at the module's end): factory(database_url, settings, ...)."""
    made: List[Daemon] = []

    def make(database_url: str, settings: Optional[Dict[str, str]] = None, **kwargs) -> Daemon:
        d = Daemon(toriid_bin, database_url, settings, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


# Fast heartbeats so that staleness tests finish quickly.
HEARTBEAT_MS = 100
BASE_SETTINGS = {"events.heartbeat_ms": str(HEARTBEAT_MS), "cleanup.interval_s": "0"}


@pytest.fixture(scope="module")
def daemon(daemon_factory, database: str) -> Daemon:
    """One daemon for the module, on the module's database."""
    return daemon_factory(database, dict(BASE_SETTINGS))


@pytest.fixture
def client(daemon: Daemon):
    with torii_client.Client(daemon.request_endpoint, timeout=10) as c:
        yield c


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def wait_until(predicate, timeout_s: float, poll=None, what: str = "condition") -> None:
    """Polls ``predicate`` until it holds (``poll()`` is called between checks,
    e.g. a Subscriber's poll with a short wait); fails at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        if poll is not None:
            poll()
        else:
            time.sleep(0.01)
