# The project's commands. `make run` plays the main job; `make test` runs every test against
# a real Kafka broker and a real PostgreSQL that the suite starts itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 40000
SEED ?= 42

.PHONY: all install run test test-unit test-integration up down status logs clean bench lint schemas

all: install

$(STAMP): pyproject.toml infra/kafka/pom.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } || echo "Chromium could not be installed: the browser test needs it (Debian package chromium)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -c 'from pathlib import Path; from services.tools.devstack.kafka import ensure_jars; print("kafka jars:", ensure_jars(Path(".")))'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/mandat run --size $(N) --seed $(SEED)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

test-unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m unit tests/unit

up: install
	$(BIN)/mandat up

down:
	@test -x $(BIN)/mandat && $(BIN)/mandat down || echo "nothing installed, nothing to stop"

status: install
	$(BIN)/mandat status

logs: install
	$(BIN)/mandat logs

clean: down
	rm -rf .run

bench: install
	$(BIN)/mandat bench all

# mypy's targets are in pyproject.toml ([tool.mypy] files): the code and the tests
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

schemas: install
	$(BIN)/python -m contracts.export_schemas
