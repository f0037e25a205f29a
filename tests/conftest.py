"""The real broker for integration tests, chosen in the user's order of precedence:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set (your cluster, e.g. in CI or on a laptop);
2. testcontainers' Kafka module when a Docker engine answers;
3. the local broker run from Maven Central jars (``localkafka``), started here if needed.

The schema registry likewise: ``SCHEMA_REGISTRY_URL`` when set, else the local one
(``localkafka.registry``), started here if needed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.runtime.settings import Settings
from streams.tools.harness import Deployment


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        import localkafka

        already_running = localkafka.status() is not None
        bootstrap = localkafka.start()
        yield bootstrap
        if not already_running:
            localkafka.stop()


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """A Confluent-API schema registry: yours (SCHEMA_REGISTRY_URL), else the local Apicurio."""
    if os.environ.get("SCHEMA_REGISTRY_URL"):
        yield os.environ["SCHEMA_REGISTRY_URL"]
        return
    from localkafka import registry

    already_running = registry.status() is not None
    url = registry.start()
    yield url
    if not already_running:
        registry.stop()


@pytest.fixture
def deployment_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator:
    """Isolated deployments: own topic prefix, app id and data dirs, destroyed after the test."""
    made: list[Deployment] = []

    def make(partitions: int = 4, name: str = "d") -> Deployment:
        tag = f"t{uuid.uuid4().hex[:10]}"
        settings = Settings(
            bootstrap_servers=kafka_bootstrap,
            app_id=f"itest-{tag}",
            topic_prefix=f"{tag}.",
            partitions=partitions,
            log_level="info",
            session_timeout_s=10.0,
            stall_timeout_s=45.0,  # short, so that a false stall would show in the tests
            data_dir=tmp_path / "data",
        )
        deployment = Deployment(settings, tmp_path / f"{name}-{tag}").create_topics()
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.destroy()


@pytest.fixture
def deployment(deployment_factory) -> Deployment:
    return deployment_factory()


@pytest.fixture
def local_broker(kafka_bootstrap: str) -> str:
    """The local broker's bootstrap address; skips when the tests run on another cluster."""
    import localkafka

    if kafka_bootstrap != localkafka.bootstrap():
        pytest.skip("needs the local broker (its SASL listener)")
    return kafka_bootstrap
