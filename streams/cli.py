"""`identify-stream`: the one command line of the project."""

from __future__ import annotations

import argparse
import json
import sys

from streams.settings import Settings


def _worker(args: argparse.Namespace) -> None:
    from streams.worker import run_worker

    run_worker(Settings.from_env())


def _topics(args: argparse.Namespace) -> None:
    from topology.admin import ensure_topics

    settings = Settings.from_env()
    specs = settings.topology().all()
    if args.action == "create":
        created = ensure_topics(settings.kafka_config(), specs, settings.replication_factor)
        print(f"created {len(created)} of {len(specs)} topics: {', '.join(created) or '-'}")
    for spec in specs:
        print(
            json.dumps(
                {
                    "name": spec.name,
                    "partitions": spec.partitions,
                    "key": spec.key,
                    "value": spec.value,
                    "config": spec.config,
                }
            )
        )


def _demo(args: argparse.Namespace) -> None:
    from streams.demo import run_demo

    run_demo(people=args.people, seed=args.seed)


def _profiles(args: argparse.Namespace) -> None:
    from streams.readback import latest_by_key
    from topology.avro import PROFILE

    settings = Settings.from_env()
    topic = settings.topology().profiles.name
    for key, profile in list(latest_by_key(settings.kafka_config(), topic, PROFILE.decode).items())[
        : args.limit
    ]:
        print(json.dumps({"key": key, **profile}, default=str))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="identify-stream",
        description="Identity resolution over Kafka. Settings come from the environment "
        "(KAFKA_BOOTSTRAP_SERVERS, IDENTITY_STREAM_*; see README).",
    )
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker until stopped").set_defaults(func=_worker)
    topics = sub.add_parser("topics", help="create or describe the declared topics")
    topics.add_argument("action", choices=["create", "describe"])
    topics.set_defaults(func=_topics)
    demo = sub.add_parser("demo", help="run the whole pipeline on a generated stream")
    demo.add_argument("--people", type=int, default=800, help="people in the generated stream")
    demo.add_argument("--seed", type=int, default=7, help="workload seed")
    demo.set_defaults(func=_demo)
    profiles = sub.add_parser("profiles", help="print the latest profiles from the profiles topic")
    profiles.add_argument("--limit", type=int, default=20)
    profiles.set_defaults(func=_profiles)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
