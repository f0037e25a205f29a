"""The runtime: runs the pure rules on faust-streaming, Kafka, RocksDB and librdkafka."""
