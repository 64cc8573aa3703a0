# The project's commands. `make run` plays the main job; `make test` runs every test against
# a real Kafka broker and a real PostgreSQL that the suite starts itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 40000
SEED ?= 42

.PHONY: all install promtool run test test-unit test-integration up down status logs clean bench lint schemas

all: install

$(STAMP): pyproject.toml infra/kafka/pom.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } || echo "Chromium could not be installed: the browser test needs it (Debian package chromium)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@command -v promtool >/dev/null 2>&1 || test -x $(BIN)/promtool || $(MAKE) --no-print-directory promtool || echo "promtool could not be installed: the alert-rule tests need it (Debian package prometheus)"
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -c 'from pathlib import Path; from services.tools.devstack.kafka import ensure_jars; print("kafka jars:", ensure_jars(Path(".")))'
	@touch $(STAMP)

install: $(STAMP)

# promtool checks and unit-tests the alert rules (infra/prometheus). It is taken from Debian's
# prometheus package without installing the package: no Prometheus daemon, no service.
promtool:
	@mkdir -p $(BIN)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	{ apt-get download -q prometheus >/dev/null 2>&1 || { apt-get update -q && apt-get download -q prometheus; }; } && \
	dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && \
	install -m 0755 usr/bin/promtool $(abspath $(BIN))/promtool && $(abspath $(BIN))/promtool --version | head -1

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
# ruff (lint and format), mypy --strict over the code and the tests, import-linter's layers
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

schemas: install
	$(BIN)/python -m contracts.export_schemas
