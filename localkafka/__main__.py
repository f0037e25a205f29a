"""`python -m localkafka start|stop|status|reset|fetch` (start prints the bootstrap address)."""

from __future__ import annotations

import sys
import time

from localkafka import broker


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
        else:
            print(f"unknown command {command!r}: start|stop|status|reset|fetch", file=sys.stderr)
            return 2
    except broker.BrokerError as exc:
        print(f"localkafka: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
