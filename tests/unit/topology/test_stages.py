"""The stage declaration is consistent: what the runtime builds from it can run."""

from streams.rules.outcomes import ATTRIBUTE_FIRSTS
from topology.avro import AvroSchema
from topology.stages import IDENTIFY_EVENTS, STAGES, TABLES
from topology.topics import declare


def test_each_input_feeds_exactly_one_stage_and_each_table_has_one_owner():
    inputs = [stage.input for stage in STAGES]
    assert len(inputs) == len(set(inputs))
    assert len(TABLES) == len({table.name for table in TABLES})
    assert IDENTIFY_EVENTS in inputs


def test_only_the_input_stage_is_stateless():
    stateless = [stage.name for stage in STAGES if stage.table is None]
    assert stateless == [next(s.name for s in STAGES if s.input == IDENTIFY_EVENTS)]


def test_every_output_is_another_stage_an_avro_topic_or_the_attribute_firsts():
    topology = declare("app", prefix="p.")
    inputs = {stage.input for stage in STAGES}
    for stage in STAGES:
        assert topology.stream(stage.input).name.startswith("p.")
        for output in stage.outputs:
            assert (
                output in inputs
                or output == ATTRIBUTE_FIRSTS  # internal JSON, read in full by every worker
                or isinstance(topology.stream(output).schema, AvroSchema)
            )
    assert topology.attribute_firsts.config["cleanup.policy"] == "compact"
    for table in TABLES:
        changelog = topology.changelog(table.name)
        assert changelog.name == f"app-{table.name}-changelog"
        assert changelog.config["cleanup.policy"] == "compact"
