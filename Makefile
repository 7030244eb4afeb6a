# Two entry points for a new machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
EXAMPLE := examples/galore-smollm2.dlm

.PHONY: demo test setup setup-dev lint bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The core only: pydantic, pyyaml, jinja2, jsonschema, packaging.
setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

# Torch first, pinned to the local CPU wheel; then the training stack and dev tools.
setup-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[train,qlora,galore,dev]"

demo: setup
	$(BIN)/dlm-gen explain $(EXAMPLE) --target a100-80gb
	$(BIN)/dlm-gen explain $(EXAMPLE) --target cpu --verbose

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup-dev lint
	$(BIN)/python -m pytest

bench: setup-dev
	$(BIN)/python bench/explain_speed.py

schema: setup
	$(BIN)/dlm-gen schema > schema/dlm-frontmatter.schema.json

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
