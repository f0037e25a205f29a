"""`python -m localkafka start|stop|status|reset|fetch` for the broker (start prints the bootstrap
address) and `registry-start|registry-stop|registry-status|registry-fetch` for the schema registry
(registry-start prints the URL of its Confluent-compatible API)."""

from __future__ import annotations

import sys
import time

from localkafka import broker, registry

COMMANDS = (
    "start|stop|status|reset|fetch|registry-start|registry-stop|registry-status|registry-fetch"
)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "start":
            started = time.monotonic()
            address = broker.start()
            print(f"Kafka broker ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
            print(address)
        elif command == "stop":
            broker.stop()
        elif command == "status":
            address = broker.status()
            print(address or "not running")
            return 0 if address else 3
        elif command == "reset":
            broker.reset()
        elif command == "fetch":
            print(broker.fetch_jars())
        elif command == "registry-start":
            started = time.monotonic()
            url = registry.start()
            print(f"schema registry ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
            print(url)
        elif command == "registry-stop":
            registry.stop()
        elif command == "registry-status":
            url = registry.status()
            print(url or "not running")
            return 0 if url else 3
        elif command == "registry-fetch":
            print(registry.fetch())
        else:
            print(f"unknown command {command!r}: {COMMANDS}", file=sys.stderr)
            return 2
    except (broker.BrokerError, registry.RegistryError) as exc:
        print(f"localkafka: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
