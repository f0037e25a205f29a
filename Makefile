# The README's two commands are `make demo` and `make test`; everything else is plumbing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HEY    := .localkafka/bin/hey
NATIVE := .build/native/FINGERPRINT

.PHONY: demo test bench bench-scale bench-gateway hey chaos install lint unit integration broker-start broker-stop broker-status registry-start registry-stop clean

demo: install ## fetch and start a broker, run a worker, publish a generated stream, print profiles
	$(BIN)/identify-stream demo

test: install ## lint, unit tests, integration tests against a real broker
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: install $(HEY) ## throughput, latency, memory, recovery and the pass-through ceiling (BENCH_ARGS=...)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-gateway: install $(HEY) ## the HTTP gateway under hey's load: requests/s and p99 (GATEWAY_ARGS=...)
	$(BIN)/python -m benchmarks.gateway_load $(GATEWAY_ARGS)

bench-scale: install ## one long run: throughput and memory from 10^4 to 10^6 events (SCALE_ARGS=...)
	$(BIN)/python -m benchmarks.scale $(SCALE_ARGS)

chaos: install ## SIGKILLs, a broker restart, a 1 -> 2 -> 1 group, junk: results must equal a clean run's (CHAOS_ARGS=...)
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

install: $(STAMP) $(NATIVE)

hey: $(HEY)

$(HEY): ## the gateway bench's HTTP load generator, pinned, from the Go module proxy
	GOBIN=$(abspath $(dir $(HEY))) go install github.com/rakyll/hey@v0.1.4

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,native]'
	rm -f $(VENV)/.installed-*
	touch $@

$(NATIVE): $(STAMP) streams/native.py $(wildcard streams/rules/*.py) ## the rules compiled with mypyc (streams/native.py)
	mkdir -p .build && $(BIN)/python -m streams.native build > .build/native.log 2>&1 || (cat .build/native.log; exit 1)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

broker-start: install ## the local single-node KRaft broker (Maven Central jars, no Docker)
	$(BIN)/python -m localkafka start

broker-stop: install
	$(BIN)/python -m localkafka stop

broker-status: install
	$(BIN)/python -m localkafka status

registry-start: install ## the local schema registry, Confluent's API (Apicurio, Maven Central, no Docker)
	$(BIN)/python -m localkafka registry-start

registry-stop: install
	$(BIN)/python -m localkafka registry-stop

clean: broker-stop registry-stop
	rm -rf .data .localkafka .build $(VENV)
