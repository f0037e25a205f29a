"""Run workers as real OS processes, as production does, for the demo, tests and benchmarks.

A worker in its own process can be SIGKILLed, restarted on the same data dir, or started twice to
form a consumer group: the failure modes that matter cannot be exercised in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from streams.runtime.processes import process_settings
from streams.runtime.settings import Settings

READY_LINE = "Ready"  # faust's worker logs "[^Worker]: Ready" once its tables are recovered


class WorkerFailed(RuntimeError):
    """The worker process exited when it should be running."""


class WorkerProcess:
    """One ``identify-stream worker`` process with its log file."""

    command = "worker"

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.tools.cli", self.command],
                env={**os.environ, **self.env(), "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def env(self) -> dict[str, str]:
        return self.settings.to_env()

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def ports(self) -> list[int]:
        """The HTTP port of each of its worker processes (streams.runtime.processes)."""
        if self.settings.processes == 1:
            return [self.settings.web_port]
        return [process_settings(self.settings, n).web_port for n in range(self.settings.processes)]

    def wait_ready(self, timeout: float = 90.0) -> WorkerProcess:
        """Until each of its worker processes says it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(READY_LINE) >= self.settings.processes:
                return self
            if self.process is None or self.process.poll() is not None:
                raise WorkerFailed(f"worker exited during start:\n{self.tail()}")
            time.sleep(0.2)
        raise WorkerFailed(f"worker not ready after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful stop: faust commits offsets and closes RocksDB on SIGTERM."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Crash: SIGKILL, no chance to commit or flush anything."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


class GatewayProcess(WorkerProcess):
    """One ``identify-stream gateway`` process, ready once its /health answers 200."""

    command = "gateway"

    def __init__(self, settings: Settings, log_path: Path, keys: str, port: int) -> None:
        super().__init__(settings, log_path)
        self.keys = keys  # IDENTITY_STREAM_GATEWAY_KEYS: a file's path or the JSON itself
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def env(self) -> dict[str, str]:
        return {
            **self.settings.to_env(),
            "IDENTITY_STREAM_GATEWAY_KEYS": self.keys,
            "IDENTITY_STREAM_GATEWAY_PORT": str(self.port),
        }

    def wait_ready(self, timeout: float = 60.0) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if not self.alive():
                raise WorkerFailed(f"gateway exited during start:\n{self.tail()}")
            time.sleep(0.2)
        raise WorkerFailed(f"gateway not healthy after {timeout:.0f}s:\n{self.tail()}")
