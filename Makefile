# factroots: `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Both create .venv and install the package with every extra on first use.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch 2.13.0 lies in /opt/wheels on this project's machines; elsewhere pip
# takes torch from PyPI (see README: GPU users install a CUDA build first).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
CONF ?= conf/default.yaml
PYTEST_ARGS ?=

.PHONY: install demo test test-unit test-spark test-probe test-e2e test-cluster lint bench clean java

$(BIN)/factroots: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q $(FIND_LINKS) -e '.[all,dev]'
	@touch $@

install: $(BIN)/factroots

java:
	@bash scripts/ensure_java.sh

demo: install java
	$(BIN)/factroots -v run --conf $(CONF)

test: install java
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-spark: install java
	$(BIN)/python -m pytest tests/spark $(PYTEST_ARGS)

test-probe: install
	$(BIN)/python -m pytest tests/probe $(PYTEST_ARGS)

test-e2e: install java
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# a standalone master and two workers on 127.0.0.1 (started and stopped by the tests)
test-cluster: install java
	$(BIN)/python -m pytest tests/cluster $(PYTEST_ARGS)

lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests bench spark_jobs probing scripts

bench: install java
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf out bench/out .pytest_cache build/spark
