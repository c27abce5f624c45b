# ctbench developer commands. `make setup` builds .venv with the CPU build of torch pinned first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: help setup train test test-all lint bench clean

$(BIN)/ctbench: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps dynamic-network-architectures==0.4.4  # tests: nnU-Net's ResEnc U-Net (its timm dep breaks CPU torch)
	touch $(BIN)/ctbench

setup: $(BIN)/ctbench  ## create .venv and install ctbench (editable) with test tools

train: setup  ## the main job: 3D U-Net + Dice-CE on the synthetic CT phantom
	$(BIN)/ctbench train

test: setup  ## the fast tier: unit and contract tests, a smoke test of every command (<= 5 min on 2 CPU cores)
	$(BIN)/pytest -q -m "not slow and not slurm"

test-all: setup  ## every test but the SLURM ones: the fast tier and the slow one (trainings, fuzzing, DDP, export)
	$(BIN)/pytest -q -m "not slurm"

lint: setup  ## ruff over src, tests and scripts
	$(BIN)/ruff check src tests scripts

bench: setup  ## throughput benchmark of the default config (benchmark.json)
	$(BIN)/ctbench bench

help:  ## this list
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

clean:  ## remove outputs, multirun, the data cache and pytest's cache
	rm -rf outputs multirun data/cache .pytest_cache
