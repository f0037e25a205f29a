"""The rules compiled to C with mypyc, loaded only while they match their sources.

The rules are plain typed Python (``streams/rules``); mypyc turns the same files into extension
modules that run them ~1.4x faster (``benchmarks/rules_cpu.py``: CPU per event and instruction
counts, same digest of every output). ``make`` builds them into ``.build/native`` (``python -m
streams.native build``), not next to the sources, and writes a fingerprint of the sources it
compiled: ``streams.rules`` puts the compiled modules in front of its own only when that
fingerprint matches the files on disk, so an edited rule runs interpreted until the next build
instead of running stale. Nothing else changes: the compiled modules are the same functions
under the same names, and mypyc checks the type hints at every call, so the test suite run
against them is also a check of the annotations. ``IDENTITY_STREAM_INTERPRETED=1`` keeps the
interpreted rules (profilers and debuggers see into them; the results are identical).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

RULES = Path(__file__).resolve().parent / "rules"
BUILD = Path(__file__).resolve().parents[1] / ".build" / "native"
GROUP = "identity_stream_rules"  # mypyc's shared library for the group: <GROUP>__mypyc
_FINGERPRINT = "FINGERPRINT"
_SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX")  # e.g. .cpython-311-x86_64-linux-gnu.so

ACTIVE = False  # set by load(): whether streams.rules runs compiled in this process


def sources() -> list[Path]:
    """The rule modules mypyc compiles: all but the package's ``__init__``, which loads them."""
    return sorted(p for p in RULES.glob("*.py") if p.name != "__init__.py")


def fingerprint() -> str:
    """Sources and interpreter ABI: a build is used only by the interpreter it was made for."""
    digest = hashlib.sha256(_SUFFIX.encode())
    for path in sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def mode() -> str:
    """How streams.rules runs in this process: ``compiled`` or ``interpreted``."""
    return "compiled" if ACTIVE else "interpreted"


def _built() -> str | None:
    """The fingerprint of the sources the build was made from (None: no build)."""
    try:
        return (BUILD / _FINGERPRINT).read_text().strip()
    except FileNotFoundError:
        return None


def load(package_path: list[str]) -> bool:
    """Put the compiled rules in front of ``package_path`` if they match the sources."""
    global ACTIVE
    if os.environ.get("IDENTITY_STREAM_INTERPRETED", "") not in ("", "0"):
        return False
    if _built() != fingerprint():
        return False
    # The compiled modules import their group's shared library by its top-level name: loaded
    # here from the build directory, so nothing is added to sys.path.
    name = f"{GROUP}__mypyc"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BUILD / f"{name}{_SUFFIX}")
        if spec is None or spec.loader is None:
            return False
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    package_path.insert(0, str(BUILD / "streams" / "rules"))
    ACTIVE = True
    return True


def build() -> None:
    """Compile the rules with mypyc into a fresh directory and swap it in whole."""
    from mypyc.build import mypycify  # the `native` extra; only the build needs it
    from setuptools import Distribution

    stamp = fingerprint()
    if _built() == stamp:
        (BUILD / _FINGERPRINT).touch()  # sources touched, not changed (a checkout): for make
        print(f"rules already compiled for these sources in {BUILD}")
        return
    BUILD.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD.parent) as scratch:
        root = Path(scratch)
        here = Path.cwd()
        # mypyc names modules by their path from the working directory: the repository root.
        os.chdir(RULES.parents[1])
        try:
            extensions = mypycify(
                [
                    "--ignore-missing-imports",  # faust, fastavro... carry no type stubs
                    "--follow-imports=silent",  # checked: the compiled modules, not their imports
                    *(str(p.relative_to(RULES.parents[1])) for p in sources()),
                ],
                opt_level="3",
                group_name=GROUP,
                target_dir=str(root / "c"),
            )
            distribution = Distribution({"name": GROUP, "ext_modules": extensions})
            command = distribution.get_command_obj("build_ext")
            command.build_lib = str(root / "lib")  # type: ignore[attr-defined]
            command.build_temp = str(root / "temp")  # type: ignore[attr-defined]
            distribution.run_command("build_ext")
        finally:
            os.chdir(here)
        (root / "lib" / _FINGERPRINT).write_text(stamp + "\n")
        if BUILD.exists():
            shutil.rmtree(BUILD)
        (root / "lib").rename(BUILD)
    print(f"rules compiled with mypyc into {BUILD}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "status"])
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
        return
    import streams.rules  # noqa: F401  (importing it runs load() of streams.native, not __main__)
    from streams import native

    print(f"rules: {native.mode()} ({BUILD})")


if __name__ == "__main__":
    main()
