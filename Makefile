# Two entry points for a new machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
EXAMPLE := examples/galore-smollm2.dlm
TINY_EXAMPLE := examples/tiny-cpu.dlm

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
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[train,qlora,galore,plot,dev]"

# The whole path on this machine: explain a GPU plan, then build a tiny model
# offline, render a DoRA document for the CPU and train it for a few steps.
demo: setup-dev
	$(BIN)/dlm-gen explain $(EXAMPLE) --target a100-80gb
	$(BIN)/python examples/tiny_model.py runs/tiny-llama
	$(BIN)/dlm-gen explain $(TINY_EXAMPLE) --target cpu
	$(BIN)/dlm-gen render $(TINY_EXAMPLE) --target cpu --out runs/generated > runs/script-path
	$(BIN)/python "$$(cat runs/script-path)" --output-dir runs/demo --max-steps 20
	$(BIN)/python -c "import json; r = json.load(open('runs/demo/run.json'))['adapters'][0]; \
	  print('loss', round(r['first_loss'], 3), '->', round(r['final_train_loss'], 3), \
	  '| eval', round(r['eval_loss'], 3), '| adapter', r['adapter_dir'])"

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup-dev lint
	$(BIN)/python -m pytest

bench: setup-dev
	$(BIN)/python bench/explain_speed.py
	$(BIN)/python bench/train_overhead.py

schema: setup
	$(BIN)/dlm-gen schema > schema/dlm-frontmatter.schema.json

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
