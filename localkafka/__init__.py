"""The local Apache Kafka broker (Maven Central jars, KRaft, no Docker)."""

from localkafka.broker import BrokerError, bootstrap, fetch_jars, reset, start, status, stop

__all__ = ["BrokerError", "bootstrap", "fetch_jars", "reset", "start", "status", "stop"]
