"""Everything the processor exchanges with Kafka, declared once: schemas, codecs and topics."""
