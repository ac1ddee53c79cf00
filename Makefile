# One entry point for people and CI. Every target installs what it needs into .venv first,
# so a fresh clone on a fresh machine works with nothing but python3 on PATH.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup native run test lint bench calibrate scenarios clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,ray-launcher,optuna]'
	touch $(STAMP)

setup: $(STAMP)

# The engine's hot modules compiled with mypyc (planner/native.py lists them; a test checks this
# list against it). Rebuilt when one of them changes; PLANNER_NATIVE=0 keeps them Python.
NATIVE_SOURCES := planner/perf/gpu_step.py planner/sim/clock.py planner/sim/decode_heap.py \
	planner/sim/paged_kv.py planner/sim/routing.py \
	planner/sim/replica.py planner/sim/pool.py planner/sim/engine.py
NATIVE := planner/_native_build.json

$(NATIVE): $(STAMP) $(NATIVE_SOURCES) scripts/build_native.py
	$(BIN)/python scripts/build_native.py

native: $(NATIVE)

run: setup
	$(BIN)/planner

test: setup native
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

lint: setup
	$(BIN)/ruff check planner tests benchmarks scripts examples
	$(BIN)/ruff format --check planner tests benchmarks scripts examples
	$(BIN)/mypy

bench: setup native
	$(BIN)/python benchmarks/run.py

calibrate: setup
	$(BIN)/python scripts/calibrate.py --write
	$(BIN)/python scripts/calibrate_lpu.py --write

scenarios: setup
	$(BIN)/python scripts/run_scenarios.py

clean:
	rm -f planner/*.so planner/*/*.so $(NATIVE)
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache
