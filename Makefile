# One entry point for people and CI. Every target installs what it needs into .venv first,
# so a fresh clone on a fresh machine works with nothing but python3 on PATH.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench calibrate scenarios clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,ray-launcher,optuna]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/planner

test: setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: setup
	$(BIN)/ruff check planner tests benchmarks scripts examples
	$(BIN)/ruff format --check planner tests benchmarks scripts examples
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/run.py

calibrate: setup
	$(BIN)/python scripts/calibrate.py --write
	$(BIN)/python scripts/calibrate_lpu.py --write

scenarios: setup
	$(BIN)/python scripts/run_scenarios.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache
