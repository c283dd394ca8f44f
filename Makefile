# Every step a person or CI runs lives here; the README and .ci/run call these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup system-deps lint format test test-unit test-fast test-integration check-deploy demo bench lock clean broker-start broker-stop

## setup: create .venv with the locked versions, the Kafka jars, kcat and prometheus (idempotent)
setup: $(STAMP) system-deps
	@$(BIN)/centinela broker fetch

$(STAMP): pyproject.toml constraints.txt replay/_gridcsv.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || { $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null; \
		$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; }
	$(BIN)/uv pip install -q -p $(BIN)/python -r constraints.txt
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## system-deps: Debian packages the integration tests need (kcat, prometheus/promtool)
system-deps:
	@bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## test: the one command: install what is missing, lint, unit and integration tests (every test,
## slow ones included, property tests at full depth: the fuzz profile of tests/property_depth.py)
test: setup lint
	@bash scripts/pytest.sh tests --hypothesis-profile=fuzz

test-unit: $(STAMP)
	@bash scripts/pytest.sh tests/unit tests/contract -m "not integration" --hypothesis-profile=fuzz

## test-fast: the unit tests not marked slow, property tests at a fifth of their depth (under a
## minute); make test and CI still run every test at full depth
test-fast: $(STAMP)
	@bash scripts/pytest.sh tests/unit tests/contract -m "not slow and not integration" --hypothesis-profile=fast

test-integration: setup
	@bash scripts/pytest.sh tests/integration tests/contract -m integration

## check-deploy: promtool checks and unit tests of the rules, compose validation, dashboards in step
check-deploy: $(STAMP)
	@bash scripts/check-deploy.sh

## demo: the whole story end to end on the local broker
demo: setup
	$(BIN)/centinela demo

bench: setup
	$(BIN)/centinela bench all

lock:
	$(BIN)/uv pip compile -q pyproject.toml --extra train --extra dev -p 3.11 -o constraints.txt

broker-start: setup
	$(BIN)/centinela broker start

broker-stop:
	$(BIN)/centinela broker stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build replay/_gridcsv*.so
