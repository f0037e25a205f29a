"""`make chaos`: the pipeline under faults must end where a clean run of the same input ends.

Each scenario publishes a merge-heavy stream in chunks and, between chunks, at a random moment
while the workers are busy, injects one fault: SIGKILL a worker and restart it on its data dir (as
a supervisor would), restart the broker, or grow / shrink the consumer group 1 -> 2 -> 1.
Undecodable and invalid messages are mixed into every stream, and some events are sent twice
(client retries). When every stage has caught up, the final profiles, merges and rejections are
compared with the pure model of a clean run (``tests.simulation.simulate``), and every input
message is accounted for (see ``accounting``).

The seed fixes the input, the fault schedule and the moments (as fractions of the work pending);
the wall-clock interleaving of a real cluster is not reproducible, which is the point of running
several rounds. ``tests/integration/test_chaos.py`` runs one small scenario of this module inside
``make test``.

    python -m tests.chaos --people 1000 --kills 5 --rounds 2 --seed 7
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import Consumer, TopicPartition

import localkafka
from streams.tools.harness import Deployment, cluster
from streams.tools.publisher import Message
from streams.tools.readback import lag, read_all
from streams.tools.workload import WorkloadSpec, generate
from tests.integration.test_pipeline import links, refusals
from tests.simulation import Outputs, simulate
from topology.avro import IDENTIFY_EVENT, MARKER

# Most people log in on several devices, and one in five devices is later shared by someone
# else: many merges, and many refused merges, which is where a replay would do the most harm.
MERGE_HEAVY = {"anonymous_share": 0.05, "max_devices": 4, "shared_device_rate": 0.2}

# Every event adds 1 to COUNT and appends its messageId to SEEN of the profile it lands in.
# Increments count once per messageId and appends add an item once, so an event applied twice
# shows as COUNT > len(SEEN), and a lost one as a messageId missing from every SEEN.
COUNT, SEEN = "chaosCount", "chaosSeen"

Say = Callable[[str], None]

# After a difference, how long to wait before looking again, to tell late outputs from lost ones.
RECHECK_S = 15.0
# How long the workers get to commit everything after the last chunk (normally a few seconds).
CATCH_UP_S = 180.0


@dataclass(frozen=True)
class Plan:
    """One fault scenario: its input and its faults; the seed fixes both."""

    name: str
    people: int = 300
    seed: int = 7
    kills: int = 0  # SIGKILLs, each followed by a restart of the same worker
    grow_shrink: bool = False  # a second worker joins after the first chunk, leaves before the last
    broker_restart: bool = False  # only on the local broker (localkafka); skipped elsewhere
    junk_rate: float = 0.03  # the workload's own junk: placeholder ids and undecodable bytes
    invalid: int = 24  # more hand-made bad messages, of every kind in INVALID_KINDS
    resend_rate: float = 0.02  # events published a second time, later, with the same messageId


@dataclass
class Outcome:
    """What a run did and how its result differs from the clean run (nothing, when OK)."""

    plan: Plan
    events: int = 0
    kills: int = 0
    seconds: float = 0.0
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # faults skipped, workers that died alone

    @property
    def ok(self) -> bool:
        return not self.differences


# --- the input ---------------------------------------------------------------------------------


def marked(key: str | None, value: dict[str, Any] | bytes) -> Message:
    """The event with its own trace: +1 on COUNT and its messageId on SEEN (see above)."""
    if isinstance(value, bytes):
        return key, value
    return key, {**value, "increment": {COUNT: 1}, "append": {SEEN: [value["messageId"]]}}


INVALID_KINDS = (
    "empty",
    "not-avro",
    "other-schema",
    "truncated",
    "trailing-bytes",
    "no-message-id",
    "no-workspace",
    "bad-values",
)


def invalid(rng: random.Random, kind: str, n: int, like: Message, seed: int) -> Message:
    """A message of ``kind`` modelled on the event ``like``: unreadable, or readable but wrong.

    The readable ones keep the trace, so that what of them is applied is accounted for too.
    """
    key, record = like
    assert isinstance(record, dict)
    encoded = IDENTIFY_EVENT.encode(record)
    message_id = f"chaos-{seed}-invalid-{n}"
    if kind == "empty":
        return None, b""
    if kind == "not-avro":
        return None, b"\x00" + rng.randbytes(rng.randint(0, 40))
    if kind == "other-schema":
        return key, MARKER + rng.randbytes(8) + encoded[len(MARKER) + 8 :]
    if kind == "truncated":
        return key, encoded[: rng.randint(len(MARKER) + 9, len(encoded) - 1)]
    if kind == "trailing-bytes":
        return key, encoded + rng.randbytes(rng.randint(1, 8))
    if kind == "no-message-id":
        return marked(key, {**record, "messageId": rng.choice(["", "  "])})
    if kind == "no-workspace":
        return marked(key, {**record, "messageId": message_id, "workspaceId": " "})
    if kind == "bad-values":  # refused in parts; the identity and the trace still apply
        bad = {"email": "not an email", "city": "x" * 1200, "custom": {"we_reserved": 1}}
        return marked(
            key,
            {
                **record,
                "messageId": message_id,
                "timestamp": record["timestamp"] + 1,
                "profileId": "not-a-uuid",
                "set": bad,
            },
        )
    raise ValueError(kind)


def stream(plan: Plan) -> list[Message]:
    """The merge-heavy workload, each event traced, with resent events and bad messages mixed in."""
    spec = WorkloadSpec(people=plan.people, seed=plan.seed, junk_rate=plan.junk_rate, **MERGE_HEAVY)
    messages = [marked(key, value) for key, value in generate(spec)]
    rng = random.Random(f"chaos-stream-{plan.seed}")
    records = [m for m in messages if isinstance(m[1], dict)]
    for _ in range(int(len(records) * plan.resend_rate)):
        original = rng.randrange(len(messages))  # a retry comes after the original
        if isinstance(messages[original][1], dict):
            messages.insert(rng.randint(original + 1, len(messages)), messages[original])
    for n in range(plan.invalid):
        bad = invalid(rng, INVALID_KINDS[n % len(INVALID_KINDS)], n, rng.choice(records), plan.seed)
        messages.insert(rng.randint(0, len(messages)), bad)
    return messages


def schedule(plan: Plan, rng: random.Random) -> list[str]:
    """The faults in order: the group grows first and shrinks last, the rest in random order."""
    middle = ["kill"] * plan.kills + (["broker"] if plan.broker_restart else [])
    rng.shuffle(middle)
    return ["grow"] * plan.grow_shrink + middle + ["shrink"] * plan.grow_shrink


def chunks(messages: list[Message], count: int) -> list[list[Message]]:
    size = -(-len(messages) // count)
    return [messages[i * size : (i + 1) * size] for i in range(count)]


# --- the run -----------------------------------------------------------------------------------


def pending(deployment: Deployment) -> int:
    """Messages not yet committed, over the input and every repartition topic."""
    topology = deployment.topology
    topics = [topology.identify_events.name, *(t.name for t in topology.internal())]
    return lag(deployment.kafka_config, deployment.settings.app_id, topics)


def uncommitted(deployment: Deployment) -> dict[str, int]:
    """Messages not yet committed, by topic partition (only those with some)."""
    topology = deployment.topology
    consumer = Consumer({**deployment.kafka_config, "group.id": deployment.settings.app_id})
    out = {}
    try:
        for spec in [topology.identify_events, *topology.internal()]:
            partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
            for tp in consumer.committed(partitions, timeout=10):
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                left = high - (tp.offset if tp.offset >= 0 else low)
                if left > 0:
                    out[f"{spec.name}[{tp.partition}]@{tp.offset}"] = left
    finally:
        consumer.close()
    return out


def random_moment(deployment: Deployment, rng: random.Random, timeout: float = 60.0) -> int:
    """Wait until a random share of the work pending now is done; return what is left then.

    A share of the work, not a delay, so that the fault lands mid-stream on a slow machine and
    on a fast one alike. If the workers stall (a rebalance), the fault comes at the timeout.
    """
    share = rng.uniform(0.1, 0.8)
    start = pending(deployment)
    left = start
    deadline = time.monotonic() + timeout
    while left > start * (1 - share) and time.monotonic() < deadline:
        time.sleep(0.05)
        left = pending(deployment)
    return left


def on_local_broker(deployment: Deployment) -> bool:
    """True when the deployment's broker is the one localkafka runs here, so we may restart it."""
    return (
        deployment.settings.bootstrap_servers == localkafka.bootstrap()
        and localkafka.status() is not None
    )


def run(deployment: Deployment, plan: Plan, say: Say = print) -> Outcome:
    """Publish the plan's stream with its faults, wait until all is processed, compare."""
    started = time.monotonic()
    rng = random.Random(f"chaos-faults-{plan.seed}")
    messages = stream(plan)
    steps = schedule(plan, rng)
    outcome = Outcome(plan, events=len(messages))
    running = ["worker-1"]
    deployment.start_worker("worker-1")
    parts = chunks(messages, len(steps) + 1)
    for step, part in zip(steps, parts, strict=False):
        deployment.publish(part)
        left = random_moment(deployment, rng)
        say(f"  {plan.name} {time.monotonic() - started:5.1f}s: {step}, {left} messages pending")
        if step == "grow":
            running.append("worker-2")
            deployment.start_worker("worker-2")
        elif step == "shrink":
            running.remove("worker-2")
            deployment.workers["worker-2"].stop()
        elif step == "kill":
            victim = rng.choice(running)
            deployment.workers[victim].kill()
            outcome.kills += 1
            deployment.start_worker(victim)
        elif step == "broker":
            if on_local_broker(deployment):
                restart_broker(deployment, rng.uniform(0.5, 3.0), outcome, say)
            else:
                outcome.notes.append("broker restart skipped: not on the local broker")
        restart_the_fallen(deployment, running, outcome, say)
    deployment.publish(parts[-1])
    say(f"  {plan.name} {time.monotonic() - started:5.1f}s: all published")
    try:
        deployment.wait_processed(
            timeout=CATCH_UP_S,
            on_poll=lambda _: restart_the_fallen(deployment, running, outcome, say),
        )
    except TimeoutError:  # stuck: say where, and still compare what came out
        stuck = ", ".join(f"{tp} {n}" for tp, n in uncommitted(deployment).items())
        outcome.differences.append(f"not caught up in {CATCH_UP_S:.0f}s, uncommitted: {stuck}")
    say(f"  {plan.name} {time.monotonic() - started:5.1f}s: all processed")
    found = differences(deployment, messages, clean_run(plan))
    if found:  # late (the outputs trail the commits) or lost for good?
        say(f"  {plan.name}: {len(found)} differences; looking again in {RECHECK_S:.0f}s")
        time.sleep(RECHECK_S)
        again = differences(deployment, messages, clean_run(plan))
        if not again:
            outcome.notes.append(f"outputs complete only {RECHECK_S:.0f}s after the commits")
        found = [f"late: {d}" for d in found if d not in again] + again
    outcome.differences += found
    if found:  # a post-mortem: the history of a few profiles that differ
        profiles = deployment.profiles()
        _, lost = accounting(messages, profiles, deployment.rejections())
        outcome.differences += deployment.explain(
            profiles, clean_run(plan).profiles, sorted(lost)[:10], limit=2
        )
    outcome.notes += watchdog_notes(deployment)
    outcome.seconds = time.monotonic() - started
    return outcome


def watchdog_notes(deployment: Deployment) -> list[str]:
    """How often the stall watchdog restarted a worker."""
    logs = "".join(
        w.log_path.read_text(errors="replace")
        for w in deployment.workers.values()
        if w.log_path.exists()
    )
    exits = logs.count("stalled: ")
    return [f"stall watchdog exits: {exits}"] if exits else []


def restart_broker(
    deployment: Deployment, downtime: float, outcome: Outcome, say: Say, patience: float = 120.0
) -> None:
    """Stop the local broker, leave it down for ``downtime`` seconds, start it on the same data.

    While it is down, the workers reconnect in a tight loop (thousands of connects a second,
    walking the ephemeral port range, which holds the broker's ports), and soon one connects to
    itself on the broker's port (TCP simultaneous open). That socket, then its TIME_WAIT, keeps
    the broker from binding the port for a minute or more. So the ports are held here (bound,
    not listening: connections are refused as by a stopped broker) from the moment the broker
    lets go of them, and the workers are frozen (SIGSTOP, like a long GC pause) only while the
    new broker process boots and binds. Should a port still be taken, we retry, as an operator
    would, and note it.
    """
    guard = PortGuard([localkafka.broker.port() + n for n in range(3)])
    try:
        localkafka.stop()
        time.sleep(downtime)
    finally:
        frozen = [w.process.pid for w in deployment.workers.values() if w.process and w.alive()]
        for pid in frozen:
            os.killpg(pid, signal.SIGSTOP)
        guard.release()
    try:
        deadline = time.monotonic() + patience
        while True:
            try:
                localkafka.start()
                return
            except localkafka.BrokerError as exc:
                busy = "already in use" in str(exc) or "is taken" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                say(f"  {outcome.plan.name}: a broker port is in use, retrying:\n{_holders()}")
                note = "broker restart retried: its port was taken meanwhile"
                outcome.notes += [note] if note not in outcome.notes else []
                time.sleep(2.0)
    finally:
        for pid in frozen:
            os.killpg(pid, signal.SIGCONT)


class PortGuard:
    """Binds local TCP ports as soon as they are free, and keeps them until ``release``.

    A port bound by ``bind()`` is never handed out as the source port of a connection, and a
    connection to it is refused (nothing listens).
    """

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.held: dict[int, socket.socket] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        while not self._done.is_set() and len(self.held) < len(self.ports):
            for port in self.ports:
                if port in self.held:
                    continue
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    sock.close()
                else:
                    self.held[port] = sock
            time.sleep(0.002)

    def release(self) -> None:
        self._done.set()
        self._thread.join()
        for sock in self.held.values():
            sock.close()


def _holders() -> str:
    """The sockets on the broker's ports (``ss``), to tell who took one."""
    ports = {f":{localkafka.broker.port() + n} " for n in range(3)}
    try:
        listing = subprocess.run(["ss", "-tanp"], capture_output=True, text=True).stdout
    except OSError:
        return "    (ss is not installed)"
    lines = [line for line in listing.splitlines() if any(p in line for p in ports)]
    return "\n".join(f"    {line}" for line in lines) or "    (none now)"


def restart_the_fallen(
    deployment: Deployment, running: list[str], outcome: Outcome, say: Say
) -> None:
    """A worker that exited by itself is restarted, as a supervisor would, and noted."""
    for name in running:
        worker = deployment.workers[name]
        if not worker.alive():
            note = f"{name} exited by itself (code {worker.process and worker.process.returncode})"
            outcome.notes.append(note)
            say(f"  {outcome.plan.name}: {note}; restarted. Its log: {worker.log_path}")
            deployment.start_worker(name)


# --- the comparison ----------------------------------------------------------------------------


def _mapping_differences(what: str, got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    out = [f"{what} {key} missing" for key in sorted(want.keys() - got.keys())]
    out += [f"{what} {key} unexpected" for key in sorted(got.keys() - want.keys())]
    for key in sorted(got.keys() & want.keys()):
        if got[key] != want[key]:
            if isinstance(got[key], dict) and isinstance(want[key], dict):
                fields = sorted(
                    f
                    for f in got[key].keys() | want[key].keys()
                    if got[key].get(f) != want[key].get(f)
                )
                out.append(f"{what} {key} differs in {', '.join(fields)}")
            else:
                out.append(f"{what} {key}: {got[key]!r} != {want[key]!r}")
    return out


@functools.cache
def _clean_run(plan: Plan) -> Outputs:
    return simulate(stream(plan))


def clean_run(plan: Plan) -> Outputs:
    """The model's outputs for the plan's stream; scenarios with the same input share one."""
    return _clean_run(replace(plan, name="", kills=0, grow_shrink=False, broker_restart=False))


def differences(deployment: Deployment, messages: list[Message], want: Outputs) -> list[str]:
    """What differs from the clean run ``want`` of ``messages``: profiles and merges exactly,
    rejections as a set (at-least-once may repeat one, never lose one), then the accounting."""
    profiles, rejections = deployment.profiles(), deployment.rejections()
    out = _mapping_differences("profile", profiles, want.profiles)
    out += _mapping_differences("merge", links(deployment.merges()), links(want.merges))
    decided_late = repeated_claims(messages)
    got_refusals, want_refusals = (
        {r for r in refusals(found) if not (r[0] == "merge_refused" and r[1] in decided_late)}
        for found in (rejections, want.rejections)
    )
    out += [f"rejection {r} missing" for r in sorted(want_refusals - got_refusals, key=str)]
    out += [f"rejection {r} unexpected" for r in sorted(got_refusals - want_refusals, key=str)]
    lines, lost = accounting(messages, profiles, rejections)
    return out + lines + trail(deployment, sorted(lost)[:10])


def repeated_claims(messages: list[Message]) -> set[str]:
    """Logins of a user on a device that user logs in on more than once.

    Which of those is reported as a refused merge depends on arrival order when another user's
    earlier login on the device arrives between them (README, Guarantees): the links and the
    profiles never do, and are compared exactly; these refusal records are left out.
    """
    claims: dict[tuple[str, str, str], set[str]] = {}
    for _, value in messages:
        if isinstance(value, dict) and value.get("anonymousId") and value.get("userId"):
            device = (value["workspaceId"], value["anonymousId"], value["userId"])
            claims.setdefault(device, set()).add(value["messageId"])
    return {m for ids in claims.values() if len(ids) > 1 for m in ids}


def trail(deployment: Deployment, message_ids: list[str]) -> list[str]:
    """Where each message was seen: every topic of the deployment, searched for its messageId.

    Repartition envelopes are JSON and the input is Avro, so the id appears as is in both; the
    first topic where a lost message is missing names the stage that dropped it.
    """
    if not message_ids:
        return []
    seen: dict[str, Counter[str]] = {m: Counter() for m in message_ids}
    for spec in deployment.topology.all():
        for _, raw, partition in read_all(deployment.kafka_config, spec.name):
            for message_id in message_ids:
                if raw is not None and message_id.encode() in raw:
                    seen[message_id][f"{spec.name}[{partition}]"] += 1
    return [
        f"message {m} seen in: " + (", ".join(f"{t} x{n}" for t, n in seen[m].items()) or "none")
        for m in message_ids
    ]


def _traced(profile: dict[str, Any]) -> tuple[int, list[str]]:
    custom = profile["attributes"]["custom"]
    seen = custom.get(SEEN)
    return custom.get(COUNT, 0), seen[1]["items"] if seen else []


def accounting(
    messages: list[Message], profiles: dict[str, Any], rejections: list[dict[str, Any]]
) -> tuple[list[str], set[str]]:
    """Every input message ends in exactly one visible outcome; the breaches, and the lost ids.

    A message with a messageId is applied to exactly one profile (its id on that profile's SEEN,
    counted once in its COUNT) or refused whole, never both. A message without one (unreadable,
    or an empty messageId) is refused whole, once per input offset. The workers' outcome counters
    cannot say this after a crash: they live in memory and restart from zero with the worker.
    """
    named = {v["messageId"] for _, v in messages if isinstance(v, dict) and v["messageId"].strip()}
    nameless = (
        len(messages)
        - sum(1 for _, v in messages if isinstance(v, dict))
        + sum(1 for _, v in messages if isinstance(v, dict) and not v["messageId"].strip())
    )
    applied: Counter[str] = Counter()
    out = []
    for profile_id, profile in profiles.items():
        count, seen = _traced(profile)
        applied.update(seen)
        if count != len(seen):
            out.append(f"profile {profile_id}: {count} events counted, {len(seen)} applied")
    whole = [r for r in rejections if r["wholeMessage"]]
    refused = {r["messageId"] for r in whole if (r["messageId"] or "").strip()}
    positions = {
        (r["sourcePartition"], r["sourceOffset"])
        for r in whole
        if not (r["messageId"] or "").strip()
    }
    lost = named - applied.keys() - refused
    out += [f"message {m} lost: neither applied nor refused" for m in sorted(lost)]
    out += [f"message {m} applied and refused" for m in sorted(applied.keys() & refused)]
    out += [f"message {m} applied to {n} profiles" for m, n in sorted(applied.items()) if n > 1]
    out += [f"message {m} applied but never sent" for m in sorted(applied.keys() - named)]
    if len(positions) != nameless:
        out.append(f"{nameless} messages without a messageId, {len(positions)} refused")
    return out, lost


# --- make chaos --------------------------------------------------------------------------------


def plans(args: argparse.Namespace) -> list[Plan]:
    """The scenarios of the table, each ``args.rounds`` times with seeds seed, seed+1, ..."""
    base = Plan("", people=args.people, junk_rate=args.junk_rate, invalid=args.invalid)
    catalog = {
        "clean": replace(base, name="clean"),
        "kill": replace(base, name="kill", kills=args.kills),
        "group": replace(base, name="group", grow_shrink=True),
        "broker": replace(base, name="broker", broker_restart=True),
        "junk": replace(base, name="junk", junk_rate=0.2, invalid=10 * args.invalid, kills=1),
        "all": replace(base, name="all", kills=args.kills, grow_shrink=True, broker_restart=True),
    }
    return [
        replace(catalog[name], seed=args.seed + n)
        for n in range(args.rounds)
        for name in args.scenarios
    ]


def table(outcomes: list[Outcome]) -> str:
    rows = [("scenario", "seed", "events", "kills", "result", "seconds", "notes")]
    rows += [
        (
            o.plan.name,
            str(o.plan.seed),
            str(o.events),
            str(o.kills),
            "OK" if o.ok else "DIFF",
            f"{o.seconds:.1f}",
            "; ".join(o.notes),
        )
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=4, help="SIGKILLs in the kill and all runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1, help="each scenario, with seed+n")
    parser.add_argument("--junk-rate", type=float, default=0.03)
    parser.add_argument("--invalid", type=int, default=24, help="hand-made bad messages")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=["clean", "kill", "group", "broker", "junk", "all"],
        help="comma-separated: clean (no fault), kill, group, broker, junk, all",
    )
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    with ExitStack() as stack:
        bootstrap = cluster(stack)
        for plan in plans(args):
            print(f"{plan.name} (seed {plan.seed}, {plan.people} people) ...", flush=True)
            deployment = Deployment.of_its_own(
                bootstrap,
                "chaos",
                partitions=args.partitions,
                session_timeout_s=10.0,  # how long a killed worker's partitions wait to move
                stall_timeout_s=45.0,  # a stalled worker exits and is restarted within CATCH_UP_S
            )
            started = time.monotonic()
            try:
                outcome = run(deployment, plan, lambda line: print(line, flush=True))
            except Exception as exc:  # a hang or a crash is a result too
                outcome = Outcome(plan, len(stream(plan)), differences=[f"{exc!r}"])
                outcome.seconds = time.monotonic() - started
            finally:
                deployment.destroy()
            outcomes.append(outcome)
            for line in outcome.notes + outcome.differences[:20]:
                print(f"  {plan.name}: {line}", flush=True)
            if len(outcome.differences) > 20:
                print(f"  {plan.name}: ... {len(outcome.differences) - 20} more", flush=True)
            if outcome.ok:
                shutil.rmtree(deployment.workdir, ignore_errors=True)
            else:
                print(f"  {plan.name}: worker logs kept in {deployment.workdir}", flush=True)
    print(table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
