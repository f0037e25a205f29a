"""The pipeline describes itself: stages, tables, topics, keys and partitions, from the declaration.

Like Kafka Streams' ``Topology.describe()``, the description is derived from the one definition
the runtime builds its stages from, so it cannot drift from what runs: ``identify-stream
topology`` prints it as text, ``--mermaid`` as the diagram in the README (a test fails when the
README's copy differs).
"""

from __future__ import annotations

from topology.stages import STAGES, StageSpec
from topology.topics import Topology


def _node(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def text(topology: Topology, stages: tuple[StageSpec, ...] = STAGES) -> str:
    """Stages in flow order with their input, key, table and outputs; then every topic."""
    lines = ["Stages"]
    for stage in stages:
        source = topology.stream(stage.input)
        lines.append(f"  {stage.name}: {stage.doc}")
        lines.append(f"    input   {source.name} ({source.partitions} partitions), key {stage.key}")
        if stage.table is not None:
            changelog = topology.changelog(stage.table.name)
            lines.append(f"    table   {stage.table.name}: {stage.table.value}")
            lines.append(f"            restored from {changelog.name}")
        outputs = ", ".join(topology.stream(output).name for output in stage.outputs)
        lines.append(f"    outputs {outputs}")
    lines.append("")
    lines.append("Topics")
    for spec in topology.all():
        cleanup = spec.config.get("cleanup.policy", "delete")
        lines.append(f"  {spec.name} ({spec.partitions} partitions, {cleanup})")
        lines.append(f"    key   {spec.key}")
        lines.append(f"    value {spec.value}")
    return "\n".join(lines)


def mermaid(topology: Topology, stages: tuple[StageSpec, ...] = STAGES) -> str:
    """A Mermaid flowchart: topics as stadiums, stages as boxes, tables as cylinders."""
    lines = ["flowchart LR"]
    topics: dict[str, str] = {}
    for stage in stages:
        for stream in (stage.input, *stage.outputs):
            spec = topology.stream(stream)
            topics.setdefault(stream, f'  {_node(stream)}(["{spec.name}"])')
    lines += topics.values()
    for stage in stages:
        lines.append(f'  {stage.name}["<b>{stage.name}</b><br/>{stage.doc}"]')
        lines.append(f'  {_node(stage.input)} -- "key: {stage.key}" --> {stage.name}')
        if stage.table is not None:
            table = f"table_{_node(stage.table.name)}"
            lines.append(f'  {stage.name} --- {table}[("{stage.table.name}")]')
        lines += [f"  {stage.name} --> {_node(output)}" for output in stage.outputs]
    return "\n".join(lines)
