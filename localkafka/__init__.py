"""The local Apache Kafka broker (Maven Central jars, KRaft, no Docker)."""

from localkafka.broker import (
    SASL_PASSWORD,
    SASL_USERNAME,
    BrokerError,
    bootstrap,
    fetch_jars,
    reset,
    sasl_bootstrap,
    start,
    status,
    stop,
)

__all__ = [
    "SASL_PASSWORD",
    "SASL_USERNAME",
    "BrokerError",
    "bootstrap",
    "fetch_jars",
    "reset",
    "sasl_bootstrap",
    "start",
    "status",
    "stop",
]
