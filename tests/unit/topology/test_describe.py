"""The topology describes itself from the declaration, and the README shows that description."""

import re
from pathlib import Path

from topology import describe
from topology.stages import STAGES, TABLES
from topology.topics import declare

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_diagram_is_the_generated_one():
    block = re.search(
        r"<!-- topology:begin -->\n```mermaid\n(.*?)\n```\n<!-- topology:end -->",
        README.read_text(),
        re.DOTALL,
    )
    assert block is not None, "README.md lost its topology:begin/end markers"
    expected = describe.mermaid(declare("identity-stream"))
    assert block.group(1) == expected, (
        "README.md's diagram differs from the declaration; replace the block between the "
        "topology markers with the output of `identify-stream topology --mermaid`"
    )


def test_text_names_every_stage_table_and_topic_with_partitions():
    topology = declare("app", prefix="p.", partitions=6)
    text = describe.text(topology)
    for stage in STAGES:
        assert f"  {stage.name}: " in text
        assert f"key {stage.key}" in text
    for table in TABLES:
        assert f"table   {table.name}: " in text
        assert f"restored from app-{table.name}-changelog" in text
    for spec in topology.all():
        assert f"  {spec.name} (6 partitions, " in text


def test_mermaid_draws_each_edge_of_the_declaration():
    diagram = describe.mermaid(declare("app"))
    for stage in STAGES:
        assert f'-- "key: {stage.key}" --> {stage.name}' in diagram
        for output in stage.outputs:
            assert f"  {stage.name} --> {output}" in diagram
