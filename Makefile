# Event Stream Engine — every developer and CI command. `make dev` runs the product, `make test` tests it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv dev stop test browser lint fmt migrate pg-start pg-stop
.PHONY: infra-venv infra-check plan deploy smoke
.PHONY: demo

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --retries 10 -r requirements-dev.txt
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

demo: venv ## on a running `make dev` stack: import sample users, send a campaign, show its progress and summary
	$(PY) -m infra.local.demo

stop: ## stop a local stack left running (by the PIDs it recorded)
	@test ! -x $(PY) || $(PY) -m infra.local.stack stop

# PostgreSQL and the emulators are started by the test fixtures (tests/conftest.py, tests/e2e/conftest.py),
# which stop what they started and leave a running `make dev` alone.
test: venv browser infra-venv ## the whole suite on real PostgreSQL and emulators; starts and stops what it needs
	$(PY) -m pytest $(PYTEST_ARGS)

# The dashboard's browser tests drive Debian's chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

lint: venv ## ruff (lint + format check) and mypy (strict) on shared/, infra/ and tests/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared infra tests

fmt: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# --- deployment (infra/terraform, infra/deploy); operator guide: README.md (Operator guide) ---
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed-$(shell sha1sum requirements-infra.txt | cut -c1-12)
TF_DIR := infra/terraform
TF_INIT = terraform -chdir=$(TF_DIR) init -input=false \
	-backend-config="bucket=$(TF_STATE_BUCKET)" -backend-config="prefix=event-stream-engine"

$(INFRA_STAMP): requirements-infra.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	echo '*' > $(INFRA_VENV)/.gitignore  # as Python 3.13's venv does: git and ruff skip the whole dir
	$(INFRA_VENV)/bin/python -m pip install -q --retries 10 -r requirements-infra.txt
	rm -f $(INFRA_VENV)/.installed-* && touch $@

infra-venv: $(INFRA_STAMP) ## checkov + shellcheck in .venv-infra (their pins clash with the app's)

infra-check: venv infra-venv ## terraform fmt, checkov, shellcheck and the terraform-vs-code tests (also in make test)
	$(PY) -m pytest tests/infra

plan: ## terraform plan of infra/terraform (needs TF_STATE_BUCKET and infra/terraform/terraform.tfvars)
	@test -n "$(TF_STATE_BUCKET)" || { echo "set TF_STATE_BUCKET: see README.md (Operator guide)" >&2; exit 1; }
	$(TF_INIT)
	terraform -chdir=$(TF_DIR) plan -input=false

deploy: ## terraform apply of infra/terraform: shows the plan and asks before changing anything
	@test -n "$(TF_STATE_BUCKET)" || { echo "set TF_STATE_BUCKET: see README.md (Operator guide)" >&2; exit 1; }
	$(TF_INIT)
	terraform -chdir=$(TF_DIR) apply

# After `make deploy` (reads terraform outputs; secrets from the environment or Secret Manager):
#   make smoke SMOKE_ARGS="--to +447700900123"
# Against `make dev` running in another terminal: make smoke SMOKE_ARGS=--local
smoke: venv ## prove each hop of a deployment (or of make dev: SMOKE_ARGS=--local), with the likely fix per failed hop
	$(PY) -m infra.deploy.smoke $(SMOKE_ARGS)

# --- benchmarks (infra/bench): figures, baselines measured in the same run, BENCHMARKS.md ---
.PHONY: bench bench-smoke chaos

chaos: venv ## every fault (kills, outages, lost and late answers, STOP/pause/cancel races, soak) on a stack of its own, then one table (~30 min)
	$(PY) -m infra.chaos $(CHAOS_ARGS)


bench: venv ## every figure of BENCHMARKS.md with its same-run baseline, on a stack of its own (~30 min)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "make bench needs wrk (Debian: apt-get install -y wrk)" >&2; exit 1; }
	$(PY) -m infra.bench

bench-smoke: venv ## every figure at a tiny size through the same code (also part of make test)
	$(PY) -m pytest tests/bench $(PYTEST_ARGS)
