"""Load test of the HTTP gateway: requests/s and latency of WebEngage ``POST /users`` calls.

The load comes from hey (github.com/rakyll/hey, pinned, installed by ``make hey`` from the Go
module proxy into .localkafka/bin), a real HTTP load generator with keep-alive connections and
its own latency histogram, not a Python loop that would compete with the gateway for the same
interpreter. hey runs for a fixed time at a fixed concurrency against one gateway process on
the real broker (yours if KAFKA_BOOTSTRAP_SERVERS is set, else the local one); every 201 is a
message the broker acknowledged, so the count on the topic must be at least the 201s.
No worker runs: this measures the gateway and the broker, not the pipeline behind them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streams.runtime.settings import Settings
from streams.tools.harness import cluster, free_ports
from streams.tools.supervisor import GatewayProcess
from topology.admin import delete_topics, ensure_topics

HEY = Path(os.environ.get("HEY", ".localkafka/bin/hey"))
KEY = "bench-key"
BODY = {  # the WebEngage seed's example
    "userId": "johndoe",
    "firstName": "John",
    "lastName": "Doe",
    "birthDate": "1986-08-19T15:45:00-0800",
    "gender": "male",
    "email": "john@doe.com",
    "phone": "+551155256325",
    "company": "Alphabet Inc.",
    "attributes": {"Age": "31", "Dollars spent": 461.93, "Points earned": 78732},
}


def parse_hey(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms) and status codes from hey's text summary."""

    def seconds(percent: int) -> float | None:
        found = re.search(rf"^\s*{percent}%+ in ([\d.]+) secs", output, re.MULTILINE)
        return round(float(found.group(1)) * 1000, 1) if found else None

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    statuses = {
        code: int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    }
    _, _, error_lines = output.partition("Error distribution:")
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", error_lines, re.MULTILINE))
    return {
        "requests_per_s": round(float(rate.group(1)), 1) if rate else None,
        "latency_ms": {"p50": seconds(50), "p90": seconds(90), "p99": seconds(99)},
        "status_codes": statuses,
        "transport_errors": errors,
    }


def _messages(kafka_config: dict[str, str], topic: str) -> int:
    consumer = Consumer({**kafka_config, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def measure(seconds: float = 20.0, concurrency: int = 32) -> dict[str, Any]:
    """One gateway on the broker under hey's load for ``seconds`` at ``concurrency``."""
    if not HEY.exists():
        raise SystemExit(f"{HEY} is missing: `make hey` installs it (needs Go)")
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(".data") / f"bench-gateway-{run_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        settings = Settings.from_env().with_changes(
            bootstrap_servers=cluster(stack),
            app_id=f"bench-gateway-{run_id}",
            topic_prefix=f"bench-gateway-{run_id}.",
        )
        topic = settings.topology().identify_events
        ensure_topics(settings.kafka_config(), [topic], settings.replication_factor)
        stack.callback(delete_topics, settings.kafka_config(), [topic.name])
        keys = workdir / "keys.json"
        # the rate limit would cap the load at WebEngage's 5,000 calls a minute
        keys.write_text(json.dumps({"bench": {"keys": [KEY], "ratePerMinute": 1e9}}))
        body = workdir / "body.json"
        body.write_text(json.dumps(BODY))
        gateway = GatewayProcess(settings, workdir / "gateway.log", str(keys), free_ports())
        gateway.start().wait_ready()
        stack.callback(gateway.stop)
        command = [
            str(HEY),
            "-z",
            f"{seconds:g}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-H",
            f"Authorization: Bearer {KEY}",
            "-D",
            str(body),
            f"{gateway.url}/v1/accounts/bench/users",
        ]
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=seconds + 120
        ).stdout
        (workdir / "hey.txt").write_text(output)
        result = parse_hey(output)
        result["messages_on_topic"] = _messages(settings.kafka_config(), topic.name)
    accepted = result["status_codes"].get("201", 0)
    if result["messages_on_topic"] < accepted:
        raise RuntimeError(
            f"{accepted} calls answered 201 but only {result['messages_on_topic']} on the topic"
        )
    return {"seconds": seconds, "concurrency": concurrency, "endpoint": "POST /users", **result}


def summary(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    return (
        f"{result['requests_per_s']:,} requests/s, p50 / p99 {latency['p50']} / "
        f"{latency['p99']} ms at {result['concurrency']} connections "
        f"(status codes {result['status_codes']})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gateway load", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.concurrency)
    print(json.dumps(result, indent=2))
    print(f"gateway: {summary(result)}")


if __name__ == "__main__":
    main()
