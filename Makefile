# Every target installs what it needs into .venv (CPU torch pinned for CI; users may use any torch>=2.2).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo lint test bench clean

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

# ruff (pyflakes + import order) on all Python files; mypy on the package (config: pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_model.py

clean:
	rm -rf $(VENV) demo_x4.5.tif .pytest_cache
