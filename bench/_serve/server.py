"""``flagstone serve`` as a child process: started on a free port, polled until healthy, stopped."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKS = [REPO / "packs" / p for p in ("aml", "precursors")]
SOURCE = "api"
HOST = "127.0.0.1"


def flagstone_cmd(*args: str | Path) -> list[str]:
    # The interpreter running the bench, so that a venv's flagstone is the one measured.
    return [sys.executable, "-m", "flagstone", *map(str, args)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def create_key(store: Path) -> str:
    """An API key for ``store``, made through the CLI as an operator would."""
    done = subprocess.run(
        flagstone_cmd("keys", "create", "--name", "bench", "--store", store), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"flagstone keys create failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Server:
    """One store's service; ``start`` again after ``stop`` restarts it on the same store and port."""

    store: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 600) -> None:
        rules = [a for p in PACKS for a in ("--rules", str(p))]
        cmd = flagstone_cmd("serve", "--store", self.store, *rules, "--source", SOURCE, "--port", str(self.port))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"flagstone serve exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                if self.get("/v1/health")[0] == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"flagstone serve not healthy after {timeout:.0f} s:\n{self.log.read_text()}")

    def get(self, path: str, key: str | None = None) -> tuple[int, str]:
        con = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            con.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
            resp = con.getresponse()
            return resp.status, resp.read().decode()
        finally:
            con.close()

    def stop(self) -> None:
        """Ctrl-C, as an operator would: uvicorn shuts down and the service closes the store."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            print(f"warning: the server on {self.store} did not stop within 120 s and was killed")
