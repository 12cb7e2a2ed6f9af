"""A real farm for the tests: the built ``leanfarm serve --simulate`` on a
free port, with SQLite in a temporary directory.

``LEAN_FARM_BINARY`` names the binary (default: ``target/debug/leanfarm``
of the repository); ``LEAN_FARM_TEST_SANDBOX`` the sandbox backend
(default ``native``, as the Rust tests).
"""

import json
import os
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]

# The farm is local: never through a proxy the environment may name.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"


def binary() -> str:
    path = Path(os.environ.get("LEAN_FARM_BINARY", "target/debug/leanfarm"))
    if not path.is_absolute():
        path = REPOSITORY / path
    if not path.exists():
        pytest.fail(f"{path} does not exist: build it (cargo build -p leanfarm) or set LEAN_FARM_BINARY")
    return str(path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Farm:
    """One ``leanfarm serve --simulate`` process."""

    def __init__(self, data_dir: Path, extra: List[str], port: int = 0) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.port = port
        self.process: Optional["subprocess.Popen[str]"] = None
        self.url = ""
        self.log: List[str] = []

    def start(self) -> "Farm":
        sandbox = os.environ.get("LEAN_FARM_TEST_SANDBOX", "native")
        command = [
            binary(), "serve", "--simulate",
            "--addr", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            "--sandbox", sandbox,
            *self.extra,
        ]
        environment = dict(os.environ, LEAN_FARM_LOG="warn")
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if line.startswith("leanfarm: serving on "):
                self.url = line.split()[3]
                break
        else:
            raise RuntimeError("leanfarm serve did not start:\n" + "".join(self.log))
        self.port = int(self.url.rsplit(":", 1)[1])
        stderr = self.process.stderr
        threading.Thread(target=lambda: self.log.extend(stderr), daemon=True).start()
        return self

    def stop(self) -> None:
        """SIGTERM: the farm drains and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def get(self, path: str) -> Any:
        """A GET of the farm's own API, without the client under test."""
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture
def start_farm(tmp_path: Path) -> Iterator[Callable[..., Farm]]:
    """Start farms with extra ``serve`` flags; each is stopped after the test."""
    farms: List[Farm] = []

    def start(*extra: str, port: int = 0, data_dir: Optional[Path] = None) -> Farm:
        directory = data_dir or tmp_path / f"farm-{len(farms)}"
        farm = Farm(directory, list(extra), port).start()
        farms.append(farm)
        return farm

    yield start
    for farm in farms:
        farm.stop()


@pytest.fixture
def farm(start_farm: Callable[..., Farm]) -> Farm:
    """A farm with two slots."""
    return start_farm("--slots", "2")
