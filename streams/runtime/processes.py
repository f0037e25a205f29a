"""Several worker processes on one host: ``identify-stream worker`` with
``IDENTITY_STREAM_PROCESSES`` (a number, or ``auto``: one per core).

A faust worker is one Python thread, so it uses one core; a host with more cores runs more
processes, each a full member of the consumer group with its own data dir
(``<data dir>/process-<n>``: RocksDB allows one process per database) and its own HTTP port
(``web port + n``: the lookup pages route to it). This parent creates the topics once, starts
the processes, restarts one that exits (a worker's watchdog exits it to be restarted; a restart
on the same data dir keeps its state), and on SIGTERM or SIGINT stops them all, cleanly.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from streams.runtime.settings import Settings

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0  # doubled, up to MAX_RESTART_DELAY_S, while it keeps failing at start
MAX_RESTART_DELAY_S = 30.0
FAILED_AT_START_S = 30.0
STOP_TIMEOUT_S = 60.0


def process_settings(settings: Settings, number: int) -> Settings:
    """The settings of process ``number`` (0-based) of a host's worker processes."""
    return settings.with_changes(
        data_dir=settings.data_dir / f"process-{number}",
        web_port=settings.web_port + number,
        processes=1,
    )


class WorkerProcesses:
    """The host's worker processes (module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = [process_settings(settings, n) for n in range(settings.processes)]
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._delay = dict.fromkeys(range(settings.processes), RESTART_DELAY_S)
        self._stopping = False

    def run(self) -> int:
        """Until stopped by a signal; the exit code (0: stopped cleanly)."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for number in range(len(self._settings)):
            self._start(number)
        restart_at: dict[int, float] = {}
        while not self._stopping:
            now = time.monotonic()
            for number, process in list(self._running.items()):
                if number in restart_at:
                    if now >= restart_at[number]:
                        del restart_at[number]
                        self._start(number)
                    continue
                code = process.poll()
                if code is None:
                    continue
                if now - self._started[number] > FAILED_AT_START_S:
                    self._delay[number] = RESTART_DELAY_S
                logger.warning(
                    "worker process %d (pid %d) exited with %d; restarting it in %.0fs",
                    number,
                    process.pid,
                    code,
                    self._delay[number],
                )
                restart_at[number] = now + self._delay[number]
                self._delay[number] = min(self._delay[number] * 2, MAX_RESTART_DELAY_S)
            time.sleep(0.2)
        return self._stop_all()

    def _start(self, number: int) -> None:
        settings = self._settings[number]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._started[number] = time.monotonic()
        self._running[number] = subprocess.Popen(
            [sys.executable, "-m", "streams.tools.cli", "worker"],
            env={**os.environ, **settings.to_env()},
        )
        logger.info(
            "worker process %d: pid %d, data dir %s, port %d",
            number,
            self._running[number].pid,
            settings.data_dir,
            settings.web_port,
        )

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _stop_all(self) -> int:
        for process in self._running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        codes = []
        for process in self._running.values():
            try:
                codes.append(process.wait(max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return 0 if all(code == 0 for code in codes) else 1
