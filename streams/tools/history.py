"""What the pipeline did to a few profiles, read back from its topics, for a post-mortem.

When a run's profiles differ from the model (the crash-recovery tests, ``make chaos``), the
outputs alone say *that* a profile is wrong, not *where* it went wrong. Every step leaves a
record with its offset and its time: the commands each profile was sent (``by-profile``), the
states its stage wrote (the ``profile-state`` changelog, with the input position each reflects),
the states of the devices those commands name (the ``anonymous-ids`` changelog: owner and
position), and what was published (``profiles``). Laid side by side with the worker logs (restores,
rebalances, kills), they show which state a later one was built on, and who wrote it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import Message

from streams.rules.outcomes import BY_PROFILE
from streams.tools.readback import messages
from topology.stages import ANONYMOUS_IDS, PROFILE_STATE
from topology.topics import Topology


def profile_histories(
    kafka_config: dict[str, str],
    topology: Topology,
    profile_ids: Iterable[str],
    message_ids: Iterable[str] = (),
) -> list[str]:
    """One line per record that concerns ``profile_ids`` (or mentions ``message_ids``), topic
    by topic, in offset order: where, when, and what it says of those messages."""
    profiles = set(profile_ids)
    traced = sorted(set(message_ids))
    states = topology.changelog(PROFILE_STATE.name).name
    commands = topology.stream(BY_PROFILE).name
    published = topology.profiles.name
    lines = [f"messages traced (+ present, - absent): {' '.join(traced) or 'none'}"]

    lines.append(f"-- {states}: the states written (at: the input position each reflects)")
    for msg in messages(kafka_config, states):
        key = orjson.loads(msg.key()) if msg.key() else None
        if key in profiles:
            state = orjson.loads(msg.value()) if msg.value() is not None else None
            at = state.get("at") if isinstance(state, dict) else None
            lines.append(f"{_where(msg)} {key} at={at} {_mentions(msg.value(), traced)}")

    lines.append(f"-- {commands}: the commands sent (topic[partition]@offset#index)")
    devices: set[str] = set()
    for msg in messages(kafka_config, commands):
        raw = msg.value() or b""
        if not any(p.encode() in raw for p in profiles) and not _mentioned(raw, traced):
            continue
        for index, (key, command) in enumerate(orjson.loads(raw)):
            body = orjson.dumps(command)
            if key in profiles or _mentioned(body, traced):
                lines.append(f"{_where(msg)}#{index} {key} {_command(command)}")
                if isinstance(command.get("member"), str):
                    devices.add(command["member"])

    links = topology.changelog(ANONYMOUS_IDS.name).name
    lines.append(f"-- {links}: the states of the devices those commands name")
    for msg in messages(kafka_config, links):
        key = orjson.loads(msg.key()) if msg.key() else None
        if key in devices:
            record = orjson.loads(msg.value()) if msg.value() is not None else {}
            owner = (record.get("owner") or {}).get("userId")
            where = f"{_where(msg)} {key} at={record.get('at')}"
            lines.append(f"{where} owner={owner} {_mentions(msg.value(), traced)}")

    lines.append(f"-- {published}: the profiles published")
    for msg in messages(kafka_config, published):
        key = msg.key().decode() if msg.key() else None
        if key in profiles:
            kind = "tombstone" if msg.value() is None else _mentions(msg.value(), traced)
            lines.append(f"{_where(msg)} {key} {kind}")
    return lines


def _where(msg: Message) -> str:
    _, millis = msg.timestamp()
    when = datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC).strftime("%H:%M:%S.%f")
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()} {when[:-3]}"


def _mentioned(raw: bytes, traced: list[str]) -> bool:
    return any(m.encode() in raw for m in traced)


def _mentions(raw: bytes | None, traced: list[str]) -> str:
    return " ".join(("+" if raw and m.encode() in raw else "-") + m for m in traced)


def _command(command: dict[str, Any]) -> str:
    """A command in a few words: its op, the device it moves, the message it carries."""
    words = [str(command.get("op"))]
    if "member" in command:
        words.append(f"member={command['member']}")
    event = command.get("event")
    if isinstance(event, dict):
        words.append(f"message={event.get('messageId')}")
    return " ".join(words)
