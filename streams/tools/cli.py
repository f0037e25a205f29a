"""`identify-stream`: the one command line of the project."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from streams.runtime.settings import Settings


def _worker(args: argparse.Namespace) -> None:
    from streams.runtime.worker import run_worker

    run_worker(Settings.from_env())


def _gateway(args: argparse.Namespace) -> None:
    from streams.tools.gateway import GatewaySettings, run_gateway

    try:
        settings = GatewaySettings.from_env()
    except (OSError, ValueError) as exc:
        sys.exit(f"identify-stream gateway: {exc}")
    run_gateway(settings)


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


def _topology(args: argparse.Namespace) -> None:
    from topology import describe

    topology = Settings.from_env().topology()
    print(describe.mermaid(topology) if args.mermaid else describe.text(topology))


def _demo(args: argparse.Namespace) -> None:
    from streams.tools.demo import run_demo

    run_demo(people=args.people, seed=args.seed)


def _profiles(args: argparse.Namespace) -> None:
    from streams.tools.readback import decoder, latest_by_key
    from topology.avro import PROFILE

    settings = Settings.from_env()
    topic = settings.topology().profiles.name
    decode = decoder(PROFILE, settings.schema_registry)
    profiles = latest_by_key(settings.kafka_config(), topic, decode)
    for key, profile in list(profiles.items())[: args.limit]:
        print(json.dumps({"key": key, **profile}, default=str))


def _publish(args: argparse.Namespace) -> None:
    from collections import Counter

    from streams.rules.mapping import Unmappable, encode, to_record
    from streams.tools.importer import read_payloads
    from streams.tools.publisher import publish
    from streams.tools.readback import decoder, read_all, wait_caught_up
    from topology.avro import REJECTION

    settings = Settings.from_env()
    topology = settings.topology()
    now = time.time_ns() // 1_000_000
    records: list[tuple[str | None, bytes]] = []
    ours: set[str] = set()
    skipped = 0
    for path in args.files:
        for number, payload in read_payloads(path):
            try:
                if isinstance(payload, Unmappable):
                    raise payload
                record = to_record(payload, args.workspace, now)
                key = record["userId"] or record["anonymousId"] or record["profileId"]
                if key is None:  # the worker would refuse it (missing_identity): say so here
                    raise Unmappable(
                        "missing_identity", "needs an anonymousId, userId or profileId"
                    )
                value = encode(record)
            except Unmappable as exc:
                skipped += 1
                print(f"{path}:{number}: skipped: {exc}", file=sys.stderr)
                continue
            records.append((key, value))
            ours.add(record["messageId"])
    sent = publish(
        settings.kafka_config(), topology.identify_events.name, records, len(records), progress=True
    )
    print(f"published {sent} identify events to {topology.identify_events.name}, skipped {skipped}")
    if not args.wait:
        return
    wait_caught_up(
        settings.kafka_config(),
        settings.app_id,
        [topology.identify_events.name, *(t.name for t in topology.internal())],
        timeout=args.wait,
    )
    refusals = [
        value
        for _, value, _ in read_all(
            settings.kafka_config(),
            topology.rejections.name,
            decoder(REJECTION, settings.schema_registry),
        )
        if value["messageId"] in ours
    ]
    whole = Counter(r["reason"] for r in refusals if r["wholeMessage"])
    partial = Counter(r["reason"] for r in refusals if not r["wholeMessage"])
    print(f"processed: {sum(whole.values())} rejected {dict(whole)}, parts refused {dict(partial)}")
    for refusal in refusals[: args.show]:
        print(f"  {refusal['messageId']}: {refusal['reason']}: {refusal['message']}")


def _counters(args: argparse.Namespace) -> None:
    import urllib.request

    settings = Settings.from_env()
    url = args.url or f"http://{settings.web_host}:{settings.web_port}/counters/"
    with urllib.request.urlopen(url, timeout=10) as response:
        print(json.dumps(json.load(response), indent=2))


def _replay(args: argparse.Namespace) -> None:
    import datetime as dt

    from streams.tools.replay import replay

    since = None
    if args.since:
        moment = dt.datetime.fromisoformat(args.since)
        since = int((moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp() * 1000)
    settings = replay(Settings.from_env(), args.version, since)
    print(f"version {args.version}: app id {settings.app_id}, topics {settings.topic_prefix}*")


def _compare(args: argparse.Namespace) -> None:
    from streams.tools.replay import compare

    diff = compare(Settings.from_env(), args.prefix_a, args.prefix_b)
    print(
        f"{diff.same} profiles equal, {len(diff.changed)} differ, "
        f"{len(diff.only_in_a)} only in {args.prefix_a or '(no prefix)'}, "
        f"{len(diff.only_in_b)} only in {args.prefix_b or '(no prefix)'}; "
        f"merges {'equal' if diff.merges_equal else 'differ'}, "
        f"attribute types {'equal' if diff.types_equal else 'differ'}, "
        f"rejections {'equal' if diff.rejections_equal else 'differ'} "
        f"(decision log: {diff.decision_log[0]} and {diff.decision_log[1]} refusals)"
    )
    for label, keys in (
        ("differs", diff.changed),
        ("only in a", diff.only_in_a),
        ("only in b", diff.only_in_b),
    ):
        for key in keys[: args.show]:
            print(f"  {label}: {key}")
    if not diff.equal:
        sys.exit(1)


def _get(args: argparse.Namespace) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    settings = Settings.from_env()
    base = args.url or f"http://{settings.web_host}:{settings.web_port}"
    quote = urllib.parse.quote
    if args.profile:
        path = f"/profiles/{quote(args.profile)}"
    elif args.user:
        path = f"/workspaces/{quote(args.workspace)}/users/{quote(args.user)}"
    else:
        path = f"/workspaces/{quote(args.workspace)}/anonymous/{quote(args.anonymous)}"
    request = urllib.request.Request(base + path)
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(json.dumps(json.load(response), indent=2))
    except urllib.error.HTTPError as error:
        print(json.dumps(json.load(error)), file=sys.stderr)
        sys.exit(1)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="identify-stream",
        description="Identity resolution over Kafka. Settings come from the environment "
        "(KAFKA_BOOTSTRAP_SERVERS, IDENTITY_STREAM_*; see README).",
    )
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker until stopped").set_defaults(func=_worker)
    sub.add_parser(
        "gateway",
        help="serve the seeds' HTTP APIs (WebEngage, Herogi, NotifyVisitors, Heap) and publish "
        "what they accept to the input topic",
    ).set_defaults(func=_gateway)
    topics = sub.add_parser("topics", help="create or describe the declared topics")
    topics.add_argument("action", choices=["create", "describe"])
    topics.set_defaults(func=_topics)
    described = sub.add_parser(
        "topology", help="print the stages, tables, topics, keys and partitions of the pipeline"
    )
    described.add_argument("--mermaid", action="store_true", help="as a Mermaid flowchart")
    described.set_defaults(func=_topology)
    demo = sub.add_parser("demo", help="run the whole pipeline on a generated stream")
    demo.add_argument("--people", type=int, default=800, help="people in the generated stream")
    demo.add_argument("--seed", type=int, default=7, help="workload seed")
    demo.set_defaults(func=_demo)
    publish = sub.add_parser(
        "publish",
        help="publish identify events from JSON Lines or CSV files",
        description="Each line: our IdentifyEvent as JSON, or a WebEngage /users, Herogi "
        "/v1/identify or NotifyVisitors user body. CSV: a column per field, custom attributes "
        "as attributes.<name>. Lines without a messageId get one from their content, so "
        "publishing a file twice is deduplicated.",
    )
    publish.add_argument("files", nargs="+", type=Path, help=".jsonl/.json or .csv files")
    publish.add_argument("--workspace", default="default", help="workspace for lines without one")
    publish.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="wait up to SECONDS for the workers, then report the rejections of these events",
    )
    publish.add_argument("--show", type=int, default=10, help="rejections to print with --wait")
    publish.set_defaults(func=_publish)
    get = sub.add_parser("get", help="look a profile up through a running worker")
    who = get.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="userId")
    who.add_argument("--anonymous", help="anonymousId")
    who.add_argument("--profile", help="profileId")
    get.add_argument("--workspace", default="default")
    get.add_argument("--url", help="a worker's base URL (default: from settings)")
    get.set_defaults(func=_get)
    replay = sub.add_parser(
        "replay",
        help="rebuild all state from the input topic into a new version",
        description="Runs a worker with app id <app id>-VERSION and topics <prefix>VERSION.* "
        "over the whole input topic (or from --since), then stops it.",
    )
    replay.add_argument("version", help="a name for the new version, e.g. v2")
    replay.add_argument("--since", help="ISO-8601 time to start from (default: the beginning)")
    replay.set_defaults(func=_replay)
    compare = sub.add_parser(
        "compare", help="compare the profiles of two versions (exit 1 when they differ)"
    )
    compare.add_argument("prefix_a", help="topic prefix of the first version ('' for none)")
    compare.add_argument("prefix_b", help="topic prefix of the second version")
    compare.add_argument("--show", type=int, default=5, help="differing ids to print")
    compare.set_defaults(func=_compare)
    counters = sub.add_parser("counters", help="show a running worker's outcome counters")
    counters.add_argument("--url", help="the worker's /counters/ URL (default: from settings)")
    counters.set_defaults(func=_counters)
    profiles = sub.add_parser("profiles", help="print the latest profiles from the profiles topic")
    profiles.add_argument("--limit", type=int, default=20)
    profiles.set_defaults(func=_profiles)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
