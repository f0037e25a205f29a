"""Every client of the project through a SASL/PLAIN listener of a real broker."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

import localkafka
from streams.runtime.settings import Security
from streams.tools.harness import Deployment
from tests.factories import identify

pytestmark = pytest.mark.integration


def test_the_pipeline_runs_on_a_sasl_listener(local_broker, deployment, tmp_path):
    sasl = Security(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username=localkafka.SASL_USERNAME,
        sasl_password=localkafka.SASL_PASSWORD,
    )
    settings = deployment.settings.with_changes(
        bootstrap_servers=localkafka.sasl_bootstrap(), security=sasl
    )
    secured = Deployment(settings, tmp_path / "sasl")  # same topics, reached through SASL
    secured.start_worker()
    secured.publish([("u", identify(ts=1, user="u-sasl", set={"city": "Oslo"}))])
    secured.wait_processed()
    (profile,) = secured.profiles().values()
    assert profile["attributes"]["city"] == "Oslo"
    secured.stop_workers()

    errors = []
    wrong = {**settings.kafka_config(), "sasl.password": "wrong", "error_cb": errors.append}
    admin = AdminClient(wrong)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    admin.poll(1)  # error callbacks are served by poll
    assert any("Authentication failed" in str(e) for e in errors)
