# Event Stream Engine — every developer and CI command. `make dev` runs the product, `make test` tests it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv dev stop test lint fmt migrate pg-start pg-stop

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install requirements (re-run when they change)

pg-start: venv ## start the local PostgreSQL cluster (idempotent); prints DATABASE_URL
	@$(PY) -m infra.local.postgres start

pg-stop: ## stop the local PostgreSQL cluster
	@test ! -x $(PY) || $(PY) -m infra.local.postgres stop

migrate: venv ## alembic upgrade head: DATABASE_URL, or Cloud SQL via INSTANCE_CONNECTION_NAME, else local
	@if [ -z "$$DATABASE_URL$$INSTANCE_CONNECTION_NAME" ]; then \
	  export DATABASE_URL=$$($(PY) -m infra.local.postgres start); fi; \
	$(PY) -m alembic upgrade head

dev: venv ## run the whole local stack in the foreground (Ctrl-C stops it)
	$(PY) -m infra.local.stack up

stop: ## stop a local stack left running (by the PIDs it recorded)
	@test ! -x $(PY) || $(PY) -m infra.local.stack stop

test: venv ## the whole suite on real PostgreSQL and emulators; starts and stops what it needs
	@$(PY) -m infra.local.postgres start >/dev/null
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	  $(PY) -m infra.local.postgres stop; exit $$status

lint: venv ## ruff (lint + format check) and mypy on shared/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared

fmt: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# --- benchmarks (infra/bench): figures, baselines measured in the same run, BENCHMARKS.md ---
.PHONY: bench bench-smoke

bench: venv ## every figure of BENCHMARKS.md with its same-run baseline, on a stack of its own (~30 min)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "make bench needs wrk (Debian: apt-get install -y wrk)" >&2; exit 1; }
	$(PY) -m infra.bench

bench-smoke: venv ## every figure at a tiny size through the same code (also part of make test)
	$(PY) -m pytest tests/bench $(PYTEST_ARGS)
