# ctbench developer commands. `make setup` builds .venv with the CPU build of torch pinned first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup train test test-all lint bench clean

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

test: setup  ## the test suite (CPU, a few minutes)
	$(BIN)/pytest -q -m "not slurm"

lint: setup
	$(BIN)/ruff check src tests scripts

bench: setup
	$(BIN)/ctbench bench

clean:
	rm -rf outputs multirun data/cache .pytest_cache
