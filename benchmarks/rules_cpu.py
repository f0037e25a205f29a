"""CPU per event of the pure pipeline: the declared stages driven as the worker drives them.

What a loaded worker spends outside Kafka, faust and RocksDB: the route step on each raw input
message, and per keyed stage the envelopes unsealed, each record's state read from its table as
JSON (or kept decoded, as ``changelogs.RecentValues`` keeps recent ones), stepped and written back
as JSON, the outputs coalesced, sealed into envelopes per partition or Avro-encoded (single-
object), custom attribute firsts taken and profiles rendered again when a decision moves on, all as
``streams.runtime.pipeline`` and ``rerendering`` do. Tables are dicts of the bytes RocksDB would
hold; a fixed clock makes every run emit the same bytes. Table writes are held and written out
every ``FLUSH_EVENTS`` input events (or beyond ``HELD_LIMIT``), as the worker's tables hold
them until a commit.

The input is the peers benchmark's stream (``../shared/peers/gen.py``: ~74 % anonymous visits,
~18 % logins, ~8 % userId-only). Reported: CPU time per event
(``time.process_time``) over several repeats, the wall-clock share of each stage's steps and of
the runtime's encoding around them, and a digest of every record emitted (changelog, envelope
and output bytes, in order) so that two versions of the code can be compared::

    PYTHONPATH=. .venv/bin/python benchmarks/rules_cpu.py --events 20000 --repeats 3
    PYTHONPATH=. .venv/bin/python benchmarks/rules_cpu.py --profile    # cProfile, top functions
    PYTHONPATH=. .venv/bin/python benchmarks/rules_cpu.py --instructions

``--instructions`` counts machine instructions instead of CPU time, under valgrind's callgrind
(``apt install valgrind``): the same code gives the same count whatever else the machine runs,
where its CPU time moved by up to 50 % within an hour on a shared 2-core host. It replays the
first 200 and the first 1,400 events of the stream after the same warm-up, each in a process of
its own, and reports the difference per event (start-up, imports and warm-up cancel out).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pickle
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import orjson

from streams import native
from streams.rules.attribute_types import Rendered
from streams.rules.outcomes import (
    ATTRIBUTE_FIRSTS,
    BROADCAST,
    MERGES,
    PROFILES,
    REJECTIONS,
    Emit,
    Source,
    coalesce,
)
from streams.rules.steps import Policies
from streams.runtime import envelopes
from streams.runtime.changelogs import HELD_LIMIT, RecentValues, table_json
from streams.runtime.garbage_collection import between_batches, tune_for_batches
from topology.avro import IDENTIFY_EVENT, PROFILE, PROFILE_MERGE, REJECTION, AvroSchema
from topology.stages import STAGES, StageSpec
from topology.topics import partition_for

PEERS_GEN = Path(__file__).resolve().parents[2] / "shared" / "peers" / "gen.py"
NOW = 1_767_225_600_000 + 30 * 86_400_000  # fixed: outputs do not depend on the run
RENDERED_KEY = "\x00rendered"  # as streams.runtime.rerendering
_AVRO: dict[str, AvroSchema] = {PROFILES: PROFILE, MERGES: PROFILE_MERGE, REJECTIONS: REJECTION}


def messages(events: int, seed: int) -> list[tuple[str, bytes]]:
    """(key, raw value) of the peers benchmark's input stream."""
    if not PEERS_GEN.exists():
        sys.exit(f"the peers generator is not at {PEERS_GEN}")
    os.environ.setdefault("PEERS_PROJECT_CLONE", str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(PEERS_GEN.parent))
    import gen  # type: ignore[import-not-found]

    return [(key, IDENTIFY_EVENT.encode(record)) for key, record in gen.generate(events, seed)]


class Pipeline:
    """The stages on ``partitions`` partitions each, one batch of input at a time."""

    def __init__(self, partitions: int, digest: bool) -> None:
        self.partitions = partitions
        self.policies = Policies()
        self.tables: dict[str, list[dict[bytes, bytes]]] = {
            s.table.name: [{} for _ in range(partitions)] for s in STAGES if s.table
        }
        self.recent = {s.table.name: RecentValues() for s in STAGES if s.table}
        # as ChangelogTable.unflushed, per table: (partition, key) -> state
        self.unflushed: dict[str, dict[tuple[int, str], Any]] = {
            s.table.name: {} for s in STAGES if s.table
        }
        self.queues: dict[str, list[deque[bytes]]] = {
            s.input: [deque() for _ in range(partitions)] for s in STAGES[1:]
        }
        self.marks: dict[int, Rendered] = {}
        self.stored_marks: dict[int, dict[str, Any]] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self.records = 0
        self.hash = hashlib.sha256() if digest else None
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        # one worker reads every partition back: its own envelopes are not decoded again
        self.sealed = envelopes.Sealed(lambda topic, partition: True)

    def _emit(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.records += 1
        if self.hash is not None:
            for part in (topic.encode(), str(partition).encode(), key, value):
                self.hash.update(b"-" if part is None else len(part).to_bytes(4, "big") + part)

    def route(self, batch: list[tuple[str, bytes]]) -> None:
        stage, policies = STAGES[0], self.policies
        emits: list[Emit] = []
        for key, raw in batch:
            partition = partition_for(key, self.partitions)
            offset = self.offsets["in", partition]
            self.offsets["in", partition] = offset + 1
            started = time.perf_counter()
            stepped = stage.step(raw, Source("in", partition, offset), policies, NOW)
            self.seconds[stage.name] += time.perf_counter() - started
            for first_key, stamp in stepped.firsts:
                policies.types.add(first_key, stamp)
            emits += stepped.emits
        self.send(emits)

    def drain(self) -> None:
        """Every stage's waiting envelopes, a partition's at a time, until none is left."""
        while any(q for queues in self.queues.values() for q in queues):
            for stage in STAGES[1:]:
                for partition, queue in enumerate(self.queues[stage.input]):
                    if queue:
                        batch = list(queue)
                        queue.clear()
                        self.keyed(stage, partition, batch)
                        between_batches()  # as each stage's intake does

    def keyed(self, stage: StageSpec, partition: int, batch: list[bytes]) -> None:
        """One batch of one partition, as pipeline._keyed and rerendering do."""
        assert stage.table is not None
        table = self.tables[stage.table.name][partition]
        recent = self.recent[stage.table.name]
        unflushed = self.unflushed[stage.table.name]
        policies, seconds = self.policies, self.seconds
        emits: list[Emit] = []
        changed: dict[str, Any] = {}
        for envelope in batch:
            offset = self.offsets[stage.input, partition]
            self.offsets[stage.input, partition] = offset + 1
            for index, (key, value) in enumerate(self.sealed.unseal(envelope)):
                if key in changed:
                    before = changed[key]
                elif (partition, key) in unflushed:
                    before = unflushed[partition, key]
                elif (partition, key) in recent.values:
                    before = recent.values[partition, key]
                else:
                    raw = table.get(table_json(key))
                    before = None if raw is None else orjson.loads(raw)
                    recent.keep((partition, key), before)
                started = time.perf_counter()
                stepped = stage.step(before, key, value, (offset, index), policies, NOW)
                seconds[stage.name] += time.perf_counter() - started
                if stepped.state is not before:  # as pipeline._keyed
                    changed[key] = stepped.state
                for first_key, stamp in stepped.firsts:
                    policies.types.add(first_key, stamp)
                if stage.rerender is not None and stepped.renders:
                    self._marks(partition, table).note(stepped.renders, policies.types)
                emits += stepped.emits
        for key, state in changed.items():
            unflushed[partition, key] = state
            recent.keep((partition, key), state)
        if len(unflushed) > HELD_LIMIT:
            self.flush(stage.table.name)
        if stage.rerender is not None:
            emits += self._catch_up(stage, partition, table)
        self.send(emits)
        if stage.rerender is not None:
            marks = self.marks[partition].marks
            if marks != self.stored_marks.get(partition):
                unflushed[partition, RENDERED_KEY] = marks
                self.stored_marks[partition] = dict(marks)

    def _marks(self, partition: int, table: dict[bytes, bytes]) -> Rendered:
        if partition not in self.marks:
            raw = table.get(table_json(RENDERED_KEY))
            stored = orjson.loads(raw) if raw is not None else {}
            self.stored_marks[partition] = dict(stored)
            self.marks[partition] = Rendered(stored)
        return self.marks[partition]

    def _catch_up(self, stage: StageSpec, partition: int, table: dict[bytes, bytes]) -> list[Emit]:
        assert stage.rerender is not None
        marks = self._marks(partition, table)
        stale = marks.stale(self.policies.types)
        if not stale:
            return []
        emits: list[Emit] = []
        started = time.perf_counter()
        held = {k: v for (p, k), v in self.unflushed[stage.table.name].items() if p == partition}
        for raw_key, raw in table.items():
            key = orjson.loads(raw_key)
            if key != RENDERED_KEY and key not in held:
                emits += stage.rerender(orjson.loads(raw), key, stale, self.policies, NOW)
        for key, state in held.items():
            if key != RENDERED_KEY and state is not None:
                emits += stage.rerender(state, key, stale, self.policies, NOW)
        self.seconds["rerender"] += time.perf_counter() - started
        self.marks[partition] = marks.caught_up(self.policies.types)
        return emits

    def flush(self, only: str | None = None) -> None:
        """Every table's held writes (or ``only`` one's) written out, as ChangelogTable.flush."""
        for name, unflushed in self.unflushed.items():
            if only is not None and name != only:
                continue
            tables = self.tables[name]
            for (partition, key), state in unflushed.items():
                raw_key = table_json(key)
                raw = None if state is None else table_json(state)
                if raw is None:
                    tables[partition].pop(raw_key, None)
                else:
                    tables[partition][raw_key] = raw
                self._emit(name, partition, raw_key, raw)
            unflushed.clear()

    def send(self, emits: list[Emit]) -> None:
        """As pipeline._records: outputs Avro-encoded, records for a stage sealed per partition."""
        by_partition: dict[tuple[str, int], list[tuple[str, Any]]] = {}
        for emit in coalesce(emits):
            if emit.key == BROADCAST:
                for partition in range(self.partitions):
                    key = envelopes.broadcast_key(partition, self.partitions)
                    by_partition.setdefault((emit.output, partition), []).append((key, emit.value))
            elif emit.output in self.queues:
                where = (emit.output, partition_for(emit.key, self.partitions))
                by_partition.setdefault(where, []).append((emit.key, emit.value))
            elif emit.output == ATTRIBUTE_FIRSTS:
                self._emit(emit.output, -1, emit.key.encode(), orjson.dumps(emit.value))
            else:
                key = None if emit.key is None else emit.key.encode()
                value = None if emit.value is None else _AVRO[emit.output].encode(emit.value)
                self._emit(emit.output, -1, key, value)
        for (stream, partition), items in by_partition.items():
            for envelope in self.sealed.seal(stream, partition, items):
                self._emit(stream, partition, None, envelope)
                self.queues[stream][partition].append(envelope)


# Input events between two flushes of the tables: about one commit interval (1 s) of a worker
FLUSH_EVENTS = 8_000


def run(inputs: list[tuple[str, bytes]], batch: int, partitions: int, digest: bool) -> Pipeline:
    pipeline = Pipeline(partitions, digest)
    for start in range(0, len(inputs), batch):
        pipeline.route(inputs[start : start + batch])
        between_batches()
        pipeline.drain()
        if (start + batch) // FLUSH_EVENTS > start // FLUSH_EVENTS:
            pipeline.flush()
    pipeline.flush()
    return pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200, help="input messages per route batch")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="cProfile one run instead")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per event under callgrind instead (noise-free; needs valgrind)",
    )
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)  # see instructions()
    parser.add_argument("--take", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tune_for_batches()  # as the worker does, so the collector's cost is the worker's
    if args.replay is not None:
        warm_up, stream = pickle.loads(args.replay.read_bytes())
        run(warm_up, args.batch, args.partitions, digest=False)
        run(stream[: args.take], args.batch, args.partitions, digest=False)
        return
    if args.instructions:
        print(orjson.dumps(instructions(args), option=orjson.OPT_INDENT_2).decode())
        return
    inputs = messages(args.events, args.seed)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(inputs, args.batch, args.partitions, digest=False)
        profiler.disable()
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        return
    if args.once:
        # one-time costs (pycountry's tables, the zone list) paid on another seed's events
        run(messages(2_000, args.seed + 1), args.batch, args.partitions, digest=False)
        print(orjson.dumps(once(inputs, args.batch, args.partitions)).decode())
        return
    # Each repeat in a process of its own: the rules' caches have not seen these events, as a
    # worker's have not.
    command = [sys.executable, __file__, "--once", *(argv if argv is not None else sys.argv[1:])]
    runs = [
        orjson.loads(subprocess.run(command, check=True, capture_output=True).stdout)
        for _ in range(args.repeats)
    ]
    best = min(runs, key=lambda r: r["cpu_us_per_event"])
    assert len({r["digest"] for r in runs}) == 1
    print(
        orjson.dumps(
            {
                "rules": native.mode(),
                "events": len(inputs),
                "records": best["records"],
                "digest": best["digest"],
                "cpu_us_per_event": [r["cpu_us_per_event"] for r in runs],
                "best_cpu_us_per_event": best["cpu_us_per_event"],
                "steps_us_per_event (wall, best run)": best["steps"],
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


INSTRUCTION_RUNS = (200, 1_400)  # events replayed by the two callgrind runs


def instructions(args: argparse.Namespace) -> dict[str, Any]:
    """Instructions per event: two callgrind runs of the same warm-up and a prefix of one
    stream, of ``INSTRUCTION_RUNS`` events each, their difference over the events between."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("--instructions needs valgrind (apt install valgrind)")
    small, large = INSTRUCTION_RUNS
    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp) / "inputs.pickle"
        # the inputs are made here, so that making them is counted in neither run
        warm_up = messages(300, args.seed + 1)
        replay.write_bytes(pickle.dumps((warm_up, messages(large, args.seed))))
        runs = {
            events: subprocess.Popen(
                [
                    valgrind,
                    "--tool=callgrind",
                    f"--callgrind-out-file={tmp}/callgrind.{events}",
                    sys.executable,
                    __file__,
                    "--replay",
                    str(replay),
                    "--take",
                    str(events),
                    "--batch",
                    str(args.batch),
                    "--partitions",
                    str(args.partitions),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                # str hashes fixed: set orders and dict probes, and so the count, repeat exactly
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            for events in (small, large)
        }
        counts = {}
        for events, process in runs.items():
            _, stderr = process.communicate()
            found = re.search(r"Collected : (\d+)", stderr)
            if process.returncode != 0 or found is None:
                sys.exit(f"callgrind run of {events} events failed:\n{stderr[-2000:]}")
            counts[events] = int(found.group(1))
    return {
        "rules": native.mode(),
        "events": [small, large],
        "instructions": [counts[small], counts[large]],
        "instructions_per_event": (counts[large] - counts[small]) // (large - small),
    }


def once(inputs: list[tuple[str, bytes]], batch: int, partitions: int) -> dict[str, Any]:
    """One timed run (cold), then one that hashes what it emits."""
    gc.collect()
    started = time.process_time()
    timed = run(inputs, batch, partitions, digest=False)
    cpu = (time.process_time() - started) / len(inputs) * 1e6
    digest = run(inputs, batch, partitions, digest=True)
    steps = {name: s / len(inputs) * 1e6 for name, s in timed.seconds.items()}
    steps["outside the steps"] = cpu - sum(steps.values())
    return {
        "cpu_us_per_event": round(cpu, 1),
        "steps": {name: round(us, 1) for name, us in steps.items()},
        "records": digest.records,
        "digest": digest.hash.hexdigest() if digest.hash else None,
    }


if __name__ == "__main__":
    main()
