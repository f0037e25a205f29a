"""The rules stay pure: no Kafka, no faust, no I/O, so they are tested and ported as they are."""

import ast
import subprocess
import sys
from pathlib import Path

import streams.rules

RULES = Path(streams.rules.__file__).parent
# Whatever would let a rule talk to Kafka, run on faust, or reach a file, a socket or a process.
FORBIDDEN = {
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "rocksdict",
    "asyncio",
    "socket",
    "subprocess",
    "os",
    "pathlib",
    "shutil",
    "urllib",
    "http",
    "aiohttp",
    "streams.runtime",
    "streams.tools",
    "topology.topics",
    "topology.admin",
    "localkafka",
}
FORBIDDEN_CALLS = {"open", "input", "print"}
# Also not loaded indirectly (validation libraries may use the standard library's I/O modules).
ENGINES = {
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "rocksdict",
    "streams.runtime",
    "streams.tools",
    "topology.topics",
    "topology.admin",
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _within(name: str, modules: set[str]) -> bool:
    return any(name == m or name.startswith(f"{m}.") for m in modules)


def test_no_rule_module_imports_kafka_faust_or_io():
    offenders = {
        path.name: bad
        for path in sorted(RULES.glob("*.py"))
        if (bad := [name for name in _imports(path) if _within(name, FORBIDDEN)])
    }
    assert offenders == {}


def test_no_rule_module_calls_open_input_or_print():
    offenders = {
        path.name: sorted(calls)
        for path in sorted(RULES.glob("*.py"))
        if (
            calls := {
                node.func.id
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS
            }
        )
    }
    assert offenders == {}


def test_importing_every_rule_loads_no_kafka_client_or_faust():
    modules = [f"streams.rules.{p.stem}".removesuffix(".__init__") for p in RULES.glob("*.py")]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [name for name in loaded if _within(name, ENGINES)] == []
