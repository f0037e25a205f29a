"""A real single-node Apache Kafka broker from Maven Central jars, for machines without Docker.

Maven resolves the pinned ``kafka_2.13`` artifact (see ``pom.xml``) into ``<home>/libs`` once; the
broker then runs as one KRaft process that is both broker and controller, bound to 127.0.0.1.
Readiness is a real metadata round-trip, never a sleep; ``start`` is idempotent and ``stop``
escalates from SIGTERM to SIGKILL.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
POM = PACKAGE_DIR / "pom.xml"
LOG_CONFIG = PACKAGE_DIR / "log4j2.properties"
DEFAULT_PORT = 39092
# A second listener with SASL/PLAIN authentication (port + 2), so that clients' secured-cluster
# settings are exercised against a real broker. Local test credentials, not a secret.
SASL_USERNAME = "identity-stream"
SASL_PASSWORD = "local-test-password"


class BrokerError(RuntimeError):
    """The local broker cannot be fetched or started; the message says what to do."""


def home() -> Path:
    return Path(os.environ.get("LOCALKAFKA_HOME", PACKAGE_DIR.parent / ".localkafka")).resolve()


def port() -> int:
    return int(os.environ.get("LOCALKAFKA_PORT", DEFAULT_PORT))


def bootstrap() -> str:
    return f"127.0.0.1:{port()}"


def sasl_bootstrap() -> str:
    """The SASL/PLAIN listener (user SASL_USERNAME, password SASL_PASSWORD)."""
    return f"127.0.0.1:{port() + 2}"


def _require(
    tool: str,
    what: str,
    error: type[Exception] = BrokerError,
    service: str = "the local Kafka broker",
) -> str:
    path = shutil.which(tool)
    if path is None:
        raise error(
            f"{what} is required to run {service}: install it "
            f"(Debian/Ubuntu: apt-get install -y {_PACKAGES[tool]})"
        )
    return path


_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven"}


def fetch_jars() -> Path:
    """The broker's jars, fetched with Maven when missing or when the pom changed."""
    libs = home() / "libs"
    stamp = libs / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return libs
    mvn = _require("mvn", "Maven")
    _require("java", "Java 17+")
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BrokerError(f"Maven could not fetch the Kafka jars:\n{result.stdout}{result.stderr}")
    stamp.write_text(digest)
    return libs


def _properties(data: Path) -> str:
    p = port()
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{p + 1}",
            "controller.listener.names=CONTROLLER",
            f"listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1},"
            f"SASL://127.0.0.1:{p + 2}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{p},SASL://127.0.0.1:{p + 2}",
            "listener.security.protocol.map="
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USERNAME}="{SASL_PASSWORD}";',
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.enable=true",
            "delete.topic.enable=true",
            "",
        ]
    )


def _java(libs: Path, *args: str, heap: str = "256m") -> list[str]:
    return [
        _require("java", "Java 17+"),
        f"-Xmx{heap}",
        f"-Dlog4j2.configurationFile={LOG_CONFIG}",
        "-cp",
        f"{libs}/*",
        *args,
    ]


def _pid(name: str) -> int | None:
    """The pid in ``<home>/<name>.pid`` if that process is alive."""
    pid_file = home() / f"{name}.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    return pid


def _listening(number: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", number), timeout=1):
            return True
    except OSError:
        return False


def _answers(timeout: float = 5.0) -> bool:
    """True when the broker serves metadata (a listening socket alone is not enough)."""
    from confluent_kafka.admin import AdminClient

    if not _listening(port()):
        return False
    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap()}).list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(metadata.brokers)


def status() -> str | None:
    """The bootstrap address if our broker is running and answering, else None."""
    return bootstrap() if _pid("broker") is not None and _answers() else None


def _log_tail(name: str = "broker", lines: int = 30) -> str:
    log = home() / f"{name}.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def start(timeout: float = 90.0) -> str:
    """Start the broker unless it already runs; return its bootstrap address once it answers."""
    if status() is not None:
        return bootstrap()
    stop()  # a stale pid or a half-started process
    for taken in (port(), port() + 1, port() + 2):
        if _listening(taken):
            raise BrokerError(
                f"port {taken} is taken by another process; stop it or choose other ports "
                "with LOCALKAFKA_PORT (broker; +1 controller, +2 SASL listener)"
            )
    libs = fetch_jars()
    data = home() / "data"
    config = home() / "server.properties"
    config.write_text(_properties(data))
    if not (data / "meta.properties").exists():
        command = ["kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)]
        formatted = subprocess.run(
            _java(libs, *command),
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise BrokerError(f"formatting {data} failed:\n{formatted.stdout}{formatted.stderr}")
    process = _spawn("broker", _java(libs, "kafka.Kafka", str(config), heap="768m"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"the Kafka broker exited during start:\n{_log_tail()}")
        if _answers(timeout=2.0):
            return bootstrap()
        time.sleep(0.25)
    stop()
    raise BrokerError(f"the Kafka broker did not answer within {timeout:.0f}s:\n{_log_tail()}")


def _cluster_id() -> str:
    """A random KRaft cluster id, as Kafka's ``Uuid.randomUuid`` makes them: never one whose
    base64 starts with "-", which the storage tool's argument parser takes for an option (one
    start in 64 failed to format)."""
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _spawn(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """Run ``command`` in the background; its log and pid file are ``<home>/<name>.log|.pid``."""
    with (home() / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the command that started it
        )
    (home() / f"{name}.pid").write_text(str(process.pid))
    return process


def stop(timeout: float = 30.0) -> None:
    """Stop the broker: SIGTERM (a clean shutdown), SIGKILL if it hangs. No-op when not running."""
    _terminate("broker", timeout)


def _terminate(name: str, timeout: float) -> None:
    """SIGTERM the process of ``<home>/<name>.pid``, SIGKILL it if it outlives ``timeout``."""
    pid = _pid(name)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    (home() / f"{name}.pid").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def reset() -> None:
    """Stop the broker and delete its data (the fetched jars stay)."""
    stop()
    shutil.rmtree(home() / "data", ignore_errors=True)
