"""A real schema registry with Confluent's REST API from Maven Central jars, without Docker.

Confluent's registry is not on Maven Central and Karapace is not on PyPI; Apicurio Registry
2.4.2.Final is, and it serves Confluent's API under ``/apis/ccompat/v7``. Its published app jar is
a Quarkus application that must be augmented before it runs, so Maven builds the wrapper in
``registry/pom.xml`` once into ``<home>/registry-build`` and again only when the wrapper changes.
The registry runs bound to 127.0.0.1 with in-memory storage; readiness is its health check and
then a real Confluent API call, never a sleep. Global compatibility is set to BACKWARD, Confluent's
default (Apicurio's is NONE), so that schema evolution is refused here where it would be there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from localkafka.broker import (
    PACKAGE_DIR,
    _listening,
    _log_tail,
    _pid,
    _require,
    _spawn,
    _terminate,
    home,
)

WRAPPER = PACKAGE_DIR / "registry"
BUILD_INPUTS = ("pom.xml", "src/main/resources/application.properties")
RUNNER = "target/localregistry-1-runner.jar"
DEFAULT_PORT = 38081
CCOMPAT = "/apis/ccompat/v7"
SERVICE = "the local schema registry"
# Local calls must not go through an HTTP proxy set in the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RegistryError(RuntimeError):
    """The local schema registry cannot be built or started; the message says what to do."""


def port() -> int:
    return int(os.environ.get("LOCALREGISTRY_PORT", DEFAULT_PORT))


def url() -> str:
    """The Confluent-compatible API, the URL a ``SchemaRegistryClient`` takes."""
    return f"http://127.0.0.1:{port()}{CCOMPAT}"


def fetch() -> Path:
    """The registry's runner jar, built with Maven when missing or when the wrapper changed."""
    build = home() / "registry-build"
    stamp = build / ".wrapper-sha256"
    digest = hashlib.sha256(b"".join((WRAPPER / f).read_bytes() for f in BUILD_INPUTS)).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return build / RUNNER
    mvn = _require("mvn", "Maven", RegistryError, SERVICE)
    _require("java", "Java 17+", RegistryError, SERVICE)
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for name in BUILD_INPUTS:
        (build / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(WRAPPER / name, build / name)
    result = subprocess.run(
        [mvn, "-B", "-ntp", "-q", "package", "-DskipTests"],
        cwd=build,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RegistryError(
            f"Maven could not build the schema registry (is Maven Central reachable?):\n"
            f"{result.stdout}{result.stderr}"
        )
    stamp.write_text(digest)
    return build / RUNNER


def _call(method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port()}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with _HTTP.open(request, timeout=timeout) as response:
        return json.load(response)


def _answers(timeout: float = 5.0) -> bool:
    """True when the registry is healthy and its Confluent API lists subjects."""
    if not _listening(port()):
        return False
    try:
        ready = _call("GET", "/health/ready", timeout=timeout).get("status") == "UP"
        return ready and isinstance(_call("GET", f"{CCOMPAT}/subjects", timeout=timeout), list)
    except (OSError, ValueError):  # refused, 503 while starting, or not JSON
        return False


def status() -> str | None:
    """The API URL if our registry is running and answering, else None."""
    return url() if _pid("registry") is not None and _answers() else None


def start(timeout: float = 120.0) -> str:
    """Start the registry unless it already runs; return its API URL once it answers."""
    if status() is not None:
        return url()
    stop()  # a stale pid or a half-started process
    if _listening(port()):
        raise RegistryError(
            f"port {port()} is taken by another process; stop it or choose another port "
            "with LOCALREGISTRY_PORT"
        )
    runner = fetch()
    java = _require("java", "Java 17+", RegistryError, SERVICE)
    process = _spawn(
        "registry",
        [
            java,
            "-Xmx256m",
            # C1 only: a registry here answers a handful of calls, and without C2 compiling
            # Quarkus's start-up the JVM answers in half the CPU time (~2.5 s instead of ~6 s),
            # which matters on small machines where the demo starts it beside a broker.
            "-XX:TieredStopAtLevel=1",
            "-Dquarkus.http.host=127.0.0.1",  # Quarkus listens on 0.0.0.0 by default
            f"-Dquarkus.http.port={port()}",
            "-jar",
            str(runner),
        ],
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RegistryError(
                f"the schema registry exited during start:\n{_log_tail('registry')}"
            )
        if _answers(timeout=2.0):
            try:
                _call("PUT", f"{CCOMPAT}/config", {"compatibility": "BACKWARD"})
            except OSError as exc:
                stop()
                raise RegistryError(
                    f"the schema registry refused BACKWARD compatibility ({exc}); "
                    f"see {home() / 'registry.log'}"
                ) from exc
            return url()
        time.sleep(0.25)
    stop()
    raise RegistryError(
        f"the schema registry did not answer within {timeout:.0f}s:\n{_log_tail('registry')}"
    )


def stop(timeout: float = 30.0) -> None:
    """Stop the registry: SIGTERM, SIGKILL if it hangs. No-op when not running."""
    _terminate("registry", timeout)
