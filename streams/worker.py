"""Run one worker: create the declared topics, then hand the App to faust's Worker."""

from __future__ import annotations

import faust

from streams.app import build_app
from streams.settings import Settings
from topology.admin import ensure_topics


def run_worker(settings: Settings) -> None:
    """Block until the worker is stopped (SIGTERM/SIGINT stop it cleanly)."""
    ensure_topics(
        settings.kafka_config(),
        settings.topology().all(),
        settings.replication_factor,
    )
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
