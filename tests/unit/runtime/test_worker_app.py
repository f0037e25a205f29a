"""``WorkerApp.on_stopping`` comes before faust stops its consumer and closes the tables."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.runtime.worker_app import WorkerApp


def test_on_stopping_is_sent_before_faust_closes_the_tables_and_before_its_shutdown_signal(
    tmp_path, monkeypatch
):
    app = WorkerApp(
        "worker-app-test", broker="kafka://127.0.0.1:1", datadir=tmp_path, autodiscover=False
    )
    happened: list[str] = []

    async def stop_consumer() -> None:  # faust's: pauses the consumer, then tables.stop()
        happened.append("tables closed")

    monkeypatch.setattr(app, "_stop_consumer", stop_consumer)

    @app.on_stopping.connect
    async def stopping(sender: WorkerApp, **kwargs: Any) -> None:
        assert sender is app
        happened.append("stopping")

    @app.on_before_shutdown.connect
    async def before_shutdown(sender: WorkerApp, **kwargs: Any) -> None:
        happened.append("before shutdown")

    asyncio.run(app.on_stop())
    assert happened == ["stopping", "tables closed", "before shutdown"]


def test_each_app_has_its_own_receivers(tmp_path):
    first, second = (
        WorkerApp(name, broker="kafka://127.0.0.1:1", datadir=tmp_path, autodiscover=False)
        for name in ("first", "second")
    )
    heard: list[str] = []

    @first.on_stopping.connect
    def stopping(sender: WorkerApp, **kwargs: Any) -> None:
        heard.append(sender.conf.id)

    asyncio.run(second.on_stopping.send())
    asyncio.run(first.on_stopping.send())
    assert heard == ["first"]
