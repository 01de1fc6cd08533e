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
	@# torch first, pinned: the CPU build. Unpinned, a dependency would pull the newest build with GBs of CUDA.
	@$(BIN)/pip install --quiet torch==2.13.0 >&2

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo 'installing artifact-mcp into $(VENV)' >&2
	@$(BIN)/pip install --quiet -e ".[test]" >&2
	@touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed

serve: setup
	@$(BIN)/artifact-mcp serve $(ARGS)

test: setup node_modules/.installed
	$(BIN)/ruff check .
	.ci/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	.ci/lint-imports

bench: setup
	$(BIN)/python bench/crud.py $(ARGS)
