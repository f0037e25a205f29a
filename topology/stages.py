"""The pipeline, declared once as data: each stage's input, key, table, pure step and outputs.

The runtime runs each stage of this list (``streams.runtime.pipeline``), the
topics and changelogs follow from it (``topology.topics``), and ``identify-stream topology``
prints it, as text or as the Mermaid diagram in the README. A stage reads and writes only the
table keyed like its own input (faust serves only the current message's table partition), so a
record changes key only by going to another stage's input topic.

Stream names are the rules' logical outputs (``streams.rules.outcomes``) plus the input;
``Topology.stream`` maps each to a topic of a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.rules.outcomes import (
    ATTRIBUTE_FIRSTS,
    BY_ANONYMOUS,
    BY_PROFILE,
    MERGES,
    PROFILES,
    REJECTIONS,
)
from streams.rules.steps import (
    KeyedStep,
    Rerender,
    RoutingStep,
    assemble_profile,
    link_device,
    rerender_profile,
    route_message,
)

IDENTIFY_EVENTS = "identify_events"  # the input: what producers publish


@dataclass(frozen=True)
class TableSpec:
    """A RocksDB table of one stage, restored from its compacted changelog topic."""

    name: str
    value: str


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``step`` runs on every record of ``input``; a keyed step owns ``table``.

    A stage whose outputs depend on the workspaces' custom attribute types declares
    ``rerender``: when a decision changes, the runtime gives it every record of its table
    partitions, and it says what to publish again.
    """

    name: str
    input: str
    key: str
    step: RoutingStep | KeyedStep
    outputs: tuple[str, ...]
    table: TableSpec | None = None
    rerender: Rerender | None = None
    doc: str = ""


ANONYMOUS_IDS = TableSpec("anonymous-ids", "a device's owner and its own slice of the profile")
PROFILE_STATE = TableSpec("profile-state", "a profile's own registers and its devices' slices")

STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        name="route_events",
        input=IDENTIFY_EVENTS,
        key="any (producers choose)",
        step=route_message,
        outputs=(BY_ANONYMOUS, BY_PROFILE, REJECTIONS, ATTRIBUTE_FIRSTS),
        doc="decode, validate, re-key by device or profile, publish earliest custom values",
    ),
    StageSpec(
        name="link_devices",
        input=BY_ANONYMOUS,
        key="device's profileId",
        step=link_device,
        table=ANONYMOUS_IDS,
        outputs=(BY_PROFILE, MERGES, REJECTIONS),
        doc="drop retries, decide which user owns the device",
    ),
    StageSpec(
        name="assemble_profiles",
        input=BY_PROFILE,
        key="profileId",
        step=assemble_profile,
        table=PROFILE_STATE,
        rerender=rerender_profile,
        outputs=(PROFILES, BY_ANONYMOUS, REJECTIONS),
        doc="drop retries of user events, fold into the profile, publish it as types decide",
    ),
)

TABLES: tuple[TableSpec, ...] = tuple(s.table for s in STAGES if s.table is not None)
