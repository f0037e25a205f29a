"""Drive one isolated deployment of the pipeline from Python: topics, worker processes, I/O.

The demo, the integration tests and the benchmarks all run the pipeline this way, so they share
one definition of "publish, wait until processed, read the results back". Each deployment gets
its own topic prefix, application id and data dirs, so several can share a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

import localkafka
from localkafka import registry
from streams.runtime.settings import Settings
from streams.tools.history import profile_histories
from streams.tools.publisher import Message, publish
from streams.tools.readback import latest_by_key, read_all, wait_caught_up
from streams.tools.supervisor import WorkerProcess
from topology.admin import delete_topics, ensure_topics
from topology.avro import PROFILE, PROFILE_MERGE, REJECTION
from topology.topics import Topology


def cluster(stack: ExitStack) -> str:
    """The user's cluster if KAFKA_BOOTSTRAP_SERVERS names one, else the local broker.

    A local broker started here is stopped when ``stack`` closes; one already running is left be.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if localkafka.status() is None:
        print("starting the local Kafka broker (the first run fetches it from Maven Central)...")
        started = time.monotonic()
        bootstrap = localkafka.start()
        print(f"broker up at {bootstrap} in {time.monotonic() - started:.1f}s")
        stack.callback(localkafka.stop)
        return bootstrap
    return localkafka.start()


def schema_registry(stack: ExitStack) -> tuple[str, Future[str]]:
    """The user's registry if SCHEMA_REGISTRY_URL names one, else the local one: its URL at once,
    and a future done when it answers.

    A registry is a JVM that takes seconds to start (and the first run builds it with Maven), so
    the local one starts in a background thread while the caller starts the broker and workers,
    which ask it for schemas only when framed messages arrive. One started here is stopped when
    ``stack`` closes (after its start has ended either way); one already running is left be.
    """
    answering: Future[str] = Future()
    running = os.environ.get("SCHEMA_REGISTRY_URL") or registry.status()
    if running is not None:
        answering.set_result(running)
        return running, answering
    print("starting the local schema registry (the first run builds it with Maven)...")

    def start() -> str:
        started = time.monotonic()
        url = registry.start()
        print(f"schema registry up at {url} in {time.monotonic() - started:.1f}s")
        return url

    def stop() -> None:
        wait([answering])
        registry.stop()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="schema-registry")
    answering = pool.submit(start)
    pool.shutdown(wait=False)
    stack.callback(stop)
    return registry.url(), answering


class Deployment:
    """Topics + workers of one application id, under ``workdir``."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.topology: Topology = settings.topology()
        self.workers: dict[str, WorkerProcess] = {}

    @classmethod
    def of_its_own(cls, bootstrap: str, name: str, **changes: Any) -> Deployment:
        """A deployment apart from every other on the cluster: app id and topic prefix
        ``<name>-<random>``, its work under ``.data/``, the environment's settings with
        ``changes``, its topics created. The caller destroys it."""
        tag = f"{name}-{uuid.uuid4().hex[:8]}"
        settings = Settings.from_env().with_changes(
            bootstrap_servers=bootstrap, app_id=tag, topic_prefix=f"{tag}.", **changes
        )
        return cls(settings, Path(".data") / tag).create_topics()

    @property
    def kafka_config(self) -> dict[str, str]:
        return self.settings.kafka_config()

    def create_topics(self) -> Deployment:
        ensure_topics(self.kafka_config, self.topology.all(), self.settings.replication_factor)
        return self

    def data_dir(self, name: str) -> Path:
        return self.workdir / name / "state"

    def start_worker(
        self, name: str = "worker-1", wait: bool = True, processes: int = 1
    ) -> WorkerProcess:
        """Start (or restart, on the same data dir) the worker called ``name``: one
        ``identify-stream worker``, running ``processes`` worker processes."""
        previous = self.workers.get(name)
        port = previous.settings.web_port if previous else free_ports(processes)
        settings = self.settings.with_changes(
            data_dir=self.data_dir(name), web_port=port, processes=processes
        )
        worker = WorkerProcess(settings, self.workdir / name / "worker.log").start()
        self.workers[name] = worker
        return worker.wait_ready() if wait else worker

    def publish(
        self, messages: Iterable[Message], total: int | None = None, progress: bool = False
    ) -> int:
        return publish(
            self.kafka_config, self.topology.identify_events.name, messages, total, progress
        )

    def wait_processed(
        self, timeout: float = 180.0, on_poll: Callable[[int], None] | None = None
    ) -> None:
        """Until every input and repartitioned event is committed and every running worker has
        settled (read the attribute decisions and sent the rechecks they call for), then until
        those rechecks are committed too: all outputs are out."""
        topics = [self.topology.identify_events.name, *(t.name for t in self.topology.internal())]
        wait_caught_up(self.kafka_config, self.settings.app_id, topics, timeout, on_poll)
        for worker in self.workers.values():
            if worker.alive():
                for port in worker.ports():
                    _ask(port, "/settled/", timeout)
        wait_caught_up(self.kafka_config, self.settings.app_id, topics, timeout, on_poll)

    def profiles(self) -> dict[str, dict[str, Any]]:
        return latest_by_key(self.kafka_config, self.topology.profiles.name, PROFILE.decode)

    def profile_history(self) -> list[tuple[str | None, Any, int]]:
        return read_all(self.kafka_config, self.topology.profiles.name, PROFILE.decode)

    def explain(
        self,
        got: dict[str, dict[str, Any]],
        want: dict[str, dict[str, Any]],
        traced: Iterable[str] = (),
        limit: int = 3,
    ) -> list[str]:
        """How the profiles ``got`` differ from ``want``, and the history of the first ``limit``
        that do (``streams.tools.history``, the topics read once for all of them), tracing
        ``traced`` and their last messages."""
        differing = sorted(k for k in got.keys() & want.keys() if got[k] != want[k])
        missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        lines = [
            f"of {len(want)} profiles, {len(differing)} differ, {len(missing)} are missing and "
            f"{len(extra)} unexpected"
        ]
        shown = (differing + missing + extra)[:limit]
        tracing = set(traced)
        for profile_id in shown:
            mine, model = got.get(profile_id, {}), want.get(profile_id, {})
            fields = sorted(f for f in mine.keys() | model.keys() if mine.get(f) != model.get(f))
            lines.append(f"profile {profile_id} differs in {', '.join(fields)}:")
            lines += [f"  {f}: {mine.get(f)!r:.300} (model: {model.get(f)!r:.300})" for f in fields]
            tracing |= {p["lastMessageId"] for p in (mine, model) if p.get("lastMessageId")}
        lines += profile_histories(self.kafka_config, self.topology, shown, tracing)
        return lines + self.worker_events()

    def worker_events(self) -> list[str]:
        """The lines of the workers' logs that mark a change of hands: starts, group
        generations, restores, signals, exits (to line up with the records' times)."""
        lines = []
        for name, worker in self.workers.items():
            lines.append(f"-- {name}: {worker.log_path}")
            text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
            for line in text.splitlines():
                if any(mark in line for mark in _WORKER_EVENTS):
                    lines.append(line.strip()[:200])
        return lines

    def merges(self) -> dict[str, dict[str, Any]]:
        return latest_by_key(
            self.kafka_config, self.topology.profile_merges.name, PROFILE_MERGE.decode
        )

    def rejections(self) -> list[dict[str, Any]]:
        records = read_all(self.kafka_config, self.topology.rejections.name, REJECTION.decode)
        return [value for _, value, _ in records]

    def counters(self) -> dict[str, Any]:
        """Outcome counters summed over the running workers (see streams.runtime.accounting)."""
        total: dict[str, Any] = {}
        for worker in self.workers.values():
            if not worker.alive():
                continue
            for port in worker.ports():
                for name, value in _ask(port, "/counters/").items():
                    if isinstance(value, dict):
                        merged = total.setdefault(name, {})
                        for reason, n in value.items():
                            merged[reason] = merged.get(reason, 0) + n
                    else:
                        total[name] = total.get(name, 0) + value
        return total

    def stop_workers(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def destroy(self) -> None:
        """Stop the workers, delete every topic of the deployment (faust's too) and the state.

        Worker logs stay in ``workdir`` for post-mortems.
        """
        self.stop_workers()
        own = {spec.name for spec in self.topology.all()}
        existing = AdminClient(self.kafka_config).list_topics(timeout=30).topics
        internal = {
            name
            for name in existing
            if name.startswith(f"{self.settings.app_id}-")
            or (self.settings.topic_prefix and name.startswith(self.settings.topic_prefix))
        }
        delete_topics(self.kafka_config, sorted((own & existing.keys()) | internal))
        for name in self.workers:
            shutil.rmtree(self.data_dir(name), ignore_errors=True)


# what ``Deployment.worker_events`` picks out of a worker's log
_WORKER_EVENTS = (
    "Joined group",
    "restored ",
    "Signal received",
    "failed; exiting",
    "stalled",
    "Worker]: Ready",
    "dropped; read again",
)


def _ask(port: int, page: str, timeout: float = 10.0) -> Any:
    """A worker process's JSON page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=timeout) as response:
        return json.load(response)


def free_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive free ports (one per worker process)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
