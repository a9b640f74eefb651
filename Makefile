# The two commands: `make demo` (the main job) and `make test` (the whole suite).
# Everything else is a building block of those two.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: demo test bench chaos cluster-chaos up down status install system-deps lint fmt clean

demo: install system-deps
	$(BIN)/engage demo

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install system-deps
	$(BIN)/engage bench ingest
	$(BIN)/engage bench load
	$(BIN)/engage bench processors
	$(BIN)/engage bench game-core
	$(BIN)/engage bench queries
	$(BIN)/engage bench scoring
	$(BIN)/engage bench sendtime
	$(BIN)/engage bench notify
	$(BIN)/engage bench leaderboard
	$(BIN)/engage bench experiments
	$(BIN)/engage bench bandit
	$(BIN)/engage bench profile
	$(BIN)/engage bench dashboards
	$(BIN)/engage bench sdk

# Workers and sinks killed, Kafka and ClickHouse restarted while events stream; ALL-RECORDS-DELIVERED or exit 1.
# `make test` runs a shorter form (tests/integration/test_chaos.py).
chaos: install system-deps
	$(BIN)/engage chaos

# The same on 3 Kafka brokers (RF 3, min ISR 2, SCRAM over TLS) and a 2 x 2 ClickHouse cluster with ZooKeeper: a
# broker and a replica SIGKILLed and restarted besides the worker and sink kills. `make test` runs a shorter form.
cluster-chaos: install system-deps
	$(BIN)/engage chaos --clusters

up: install system-deps
	$(BIN)/engage infra up

down: install
	$(BIN)/engage infra down

status: install
	$(BIN)/engage infra status

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

system-deps:
	@./deploy/install-system-deps.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: down
	rm -rf .run
