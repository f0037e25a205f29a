"""Run a host's workers: create the declared topics, then hand the App to faust's Worker, or
start several worker processes (``Settings.processes``, see streams.runtime.processes)."""

from __future__ import annotations

import logging
import sys

import faust

from streams.runtime.app import build_app
from streams.runtime.garbage_collection import tune_for_batches
from streams.runtime.processes import WorkerProcesses
from streams.runtime.settings import Settings
from topology.admin import ensure_topics


def run_worker(settings: Settings) -> None:
    """Block until the worker is stopped (SIGTERM/SIGINT stop it cleanly)."""
    ensure_topics(
        settings.kafka_config(),
        settings.topology().all(),
        settings.replication_factor,
    )
    if settings.processes > 1:
        logging.basicConfig(
            level=settings.log_level.upper(), format="[%(asctime)s] [%(process)d] %(message)s"
        )
        sys.exit(WorkerProcesses(settings).run())
    app = build_app(settings)
    tune_for_batches()
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        logging_config=_json_logging(settings.log_level) if settings.log_format == "json" else None,
    )
    worker.execute_from_commandline()


def _json_logging(level: str) -> dict[str, object]:
    """One JSON object per log line, for log shippers (IDENTITY_STREAM_LOG_FORMAT=json)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stdout"]},
    }
