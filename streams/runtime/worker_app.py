"""The App a worker runs: faust's, with one more signal, sent when it starts to stop.

faust stops an App in this order (``App.on_stop``): it pauses its consumer and closes the
tables' RocksDB databases, and only then sends ``on_before_shutdown``. The inputs' last flush
writes to the tables, so an input that let go of its partitions there reopened databases faust
had just closed, and nothing closed them again: those last writes were in the changelog but not
always in the local database, and a restart on the same data dir restored them from Kafka.
``on_stopping`` comes first, while the tables are open and the group's consumer still commits.
(A worker stopped while it worked, three times over, restarted on its data dir: before, its
databases held offsets short of their changelogs' ends every time, twice none at all; since,
every one held its changelog's end: ``test_restart_on_the_same_data_dir_keeps_state``.)
"""

from __future__ import annotations

from typing import Any

import faust
from mode import Signal, SignalT


class WorkerApp(faust.App):
    """``faust.App`` plus ``on_stopping`` (module docstring); receivers run before faust stops
    its consumer and tables."""

    on_stopping: SignalT = Signal()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_stopping = self.on_stopping.with_default_sender(self)

    async def on_stop(self) -> None:
        await self.on_stopping.send()
        await super().on_stop()
