"""Shared set-up of the Python suite: the generated bindings and real relay processes.

`scripts/test-python` builds the library, generates the bindings into a directory it
names in PASSAGE_PY_BINDINGS, and names the relay binary in PASSAGE_RELAY_BIN.
Every wait is bounded (WAIT per event, a count per loop).
"""
import os
import random
import socket
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.environ["PASSAGE_PY_BINDINGS"])
import passage_ffi  # noqa: E402

WAIT_MS = 20_000
ADDRESS_PREFIX = "relay address: "


def free_port():
    """A port free for TCP and UDP, below the ephemeral range (so that it is still
    free when a relay restarts on it)."""
    for _ in range(200):
        port = random.randrange(20_000, 30_000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, socket.socket(
                socket.AF_INET, socket.SOCK_DGRAM
            ) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port")


class Relay:
    """A real passage-relay process on loopback, restartable on the same port."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.port = free_port()
        self.process = None
        self.address = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [
                os.environ["PASSAGE_RELAY_BIN"],
                "serve",
                "--data",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        found = threading.Event()

        def read():
            for line in self.process.stdout:
                if line.startswith(ADDRESS_PREFIX):
                    self.address = line[len(ADDRESS_PREFIX):].strip()
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(30):
            self.stop()
            raise RuntimeError("the relay did not start")

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def restart(self):
        self.stop()
        self.start()


@pytest.fixture
def relay(tmp_path):
    relay = Relay(tmp_path / "relay")
    yield relay
    relay.stop()


@pytest.fixture
def bindings():
    return passage_ffi


@pytest.fixture(scope="session", autouse=True)
def library_threads_end_before_python():
    """The library's threads end before the interpreter does (see passage_ffi.shutdown)."""
    yield
    passage_ffi.shutdown()
