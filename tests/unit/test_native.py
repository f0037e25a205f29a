"""The compiled rules are used exactly when they were built from the sources on disk."""

import os
from pathlib import Path

import pytest

import streams.rules.profile
from streams import native


def _built_from_these_sources() -> bool:
    marker = native.BUILD / "FINGERPRINT"
    return marker.exists() and marker.read_text().strip() == native.fingerprint()


def test_rules_run_compiled_exactly_when_the_build_matches_their_sources() -> None:
    interpreted = os.environ.get("IDENTITY_STREAM_INTERPRETED", "") not in ("", "0")
    expected = _built_from_these_sources() and not interpreted
    assert expected == native.ACTIVE
    module = Path(streams.rules.profile.__file__)
    assert (native.BUILD in module.parents) == expected
    assert module.suffix == (".so" if expected else ".py")


@pytest.mark.parametrize(
    ("built", "interpreted"),
    [
        ("other sources", None),  # a rule edited since the build
        (None, None),  # never built
        ("these sources", "1"),  # built, but interpreted on request
    ],
)
def test_the_compiled_rules_are_left_alone(
    built: str | None, interpreted: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "BUILD", tmp_path)
    if interpreted is None:
        monkeypatch.delenv("IDENTITY_STREAM_INTERPRETED", raising=False)
    else:
        monkeypatch.setenv("IDENTITY_STREAM_INTERPRETED", interpreted)
    if built is not None:
        stamp = native.fingerprint() if built == "these sources" else "0" * 64
        (tmp_path / "FINGERPRINT").write_text(stamp + "\n")
    path: list[str] = ["rules"]
    assert native.load(path) is False
    assert path == ["rules"]


def test_the_fingerprint_follows_every_rule_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.py", "b.py", "__init__.py"):
        (tmp_path / name).write_text(f"# {name}\n")
    monkeypatch.setattr(native, "RULES", tmp_path)
    before = native.fingerprint()
    (tmp_path / "__init__.py").write_text("# the loader, not compiled\n")
    assert native.fingerprint() == before
    (tmp_path / "b.py").write_text("# edited\n")
    assert native.fingerprint() != before
    assert [p.name for p in native.sources()] == ["a.py", "b.py"]
