# `make run` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; GPU users install their own build first (see README).
TORCH_CPU := torch==2.13.0

.PHONY: setup run test lint format bench mutate clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH_CPU)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	$(BIN)/fedland simulate

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/model_size.py
	$(BIN)/python benchmarks/training_memory.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/codec.py
	$(BIN)/python benchmarks/centralized.py

# Mutation testing of the core packages ([tool.mutmut] in pyproject.toml); not part of `make test`.
# Results are cached in mutants/ (a rerun only retests changed functions; rm -rf mutants to
# start over). MUTANTS narrows the run to mutant names, e.g. MUTANTS='fedland.metrics.*';
# MUTATE_JOBS sets the number of parallel workers (default: all cores). One thread each, so
# the workers do not oversubscribe the cores.
MUTANTS ?=
MUTATE_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

mutate: setup
	test -x $(BIN)/mutmut || $(BIN)/pip install --quiet -e ".[mutate]"
	set -f; OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS)
	$(BIN)/python benchmarks/mutation_score.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info mutants
