# Lance AI Platform. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,ray

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the pinned dependencies (idempotent)

up: setup ## Start the whole platform in the foreground (Level 2: DP_RUNTIME=ray AIP_RUNTIME=ray)
	$(BIN)/python -m lakestack.launcher

demo: setup ## Run the MNIST lifecycle (ingest, train, serve, predict) through the REST API
	$(BIN)/python -m lakestack.demo

test: setup ## Run the whole test suite
	$(BIN)/python -m pytest -q

bench: setup ## Measure the platform against the bare libraries; report under bench/results/
	$(BIN)/python -m bench.run

lint: setup ## ruff (lint and format) on everything, mypy on src/
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/mypy

.PHONY: help setup up demo test bench lint
