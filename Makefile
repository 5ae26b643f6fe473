# hubcap: `make help` lists the targets. Every install step the project needs is here.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INFRA_VENV := .venv-infra
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# Test files run in parallel, each whole on one worker (its module's services stay shared); most of
# the suite's time is spent waiting on services, so three workers pay off on two cores.
PYTEST_WORKERS ?= 3

.PHONY: help install install-infra install-compiler install-browser tracker dev test test-fast lint format typecheck bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is required ($(PY) not found)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# pip keeps an installed version of a local package: an edited extension is reinstalled by name.
$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt pyproject.toml native/avro_rows/*.c native/avro_rows/setup.py native/avro_rows/pyproject.toml native/lookup3/*.c native/lookup3/setup.py native/lookup3/pyproject.toml
	@$(MAKE) --no-print-directory install-compiler
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --force-reinstall ./native/avro_rows ./native/lookup3
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(VENV)/.installed node_modules/.installed ## venv at .venv (pinned deps + the hubcap CLI) and npm tools under node_modules

$(INFRA_VENV)/.installed: requirements-infra.txt
	$(PY) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet -r requirements-infra.txt
	touch $@

install-infra: $(INFRA_VENV)/.installed ## checkov (+ pycep-parser) in their own venv, for the offline Bicep checks

install-compiler: ## gcc and the Python headers, for the compiled extensions under native/
	@command -v gcc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
	@$(PY) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_path("include") + "/Python.h"))' || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(notdir $(PY))-dev >/dev/null; }

install-browser: ## Debian's chromium for the browser tests (a Playwright browser download fails here)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

tracker: node_modules/.installed ## build tracker/dist/hubcap.min.js and dashboard/dist/dashboard.min.js
	node tracker/build.mjs
	node dashboard/build.mjs

dev: install tracker ## start Azurite, the Event Hubs endpoint and the dev host on :7071; Ctrl-C stops all
	$(BIN)/python -m devstack

lint: $(VENV)/.installed ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed ## ruff fix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.installed ## mypy on workers/, devstack/, functions/ and function_app.py
	$(BIN)/mypy

test: install install-infra install-browser tracker lint typecheck ## install everything, lint, typecheck, run every test
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: install install-infra ## every test that needs no service or browser (the Bicep checks need .venv-infra)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not integration and not browser" $(PYTEST_ARGS)

bench: install tracker ## run every benchmark under bench/ (each prints one JSON object last)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## remove local state (keeps the venvs and node_modules)
	rm -rf .devstack .pytest_cache .mypy_cache .ruff_cache tracker/dist
