# The two commands: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
DATA   ?= ../shared/data/eng-pol.tsv
RUN    ?= runs/eng-pol
MODEL  ?= models/eng-pol

.PHONY: serve test train export export-fp32 evaluate bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.serve: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[serve]"
	touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.serve

## serve the shipped model on TRANSLATOR_HOST:TRANSLATOR_PORT (default 127.0.0.1:8000)
serve: $(VENV)/.serve
	$(PY) -m service

## run the whole test suite
test: $(VENV)/.dev
	$(PY) -m pytest -q

## rebuild the shipped model from the corpus (about two hours on 2 CPU cores)
train: $(VENV)/.dev
	$(PY) -m export train --data $(DATA) --out $(RUN) --max-minutes 105 --epochs 40 --patience 4

## the shipped model is the dynamically int8-quantized export (same chrF, ~2x the speed: docs/benchmarks)
export: $(VENV)/.dev
	$(PY) -m export onnx --run $(RUN) --out $(MODEL) --force --quantize int8

## the float32 variant, for comparison (make bench reports its speed and chrF)
export-fp32: $(VENV)/.dev
	$(PY) -m export onnx --run $(RUN) --out $(MODEL)-fp32 --force

evaluate: $(VENV)/.dev
	$(PY) -m export evaluate --model $(MODEL)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

## batching strategies side by side (docs/benchmarks/); needs a quiet machine, ~6 minutes
bench: $(VENV)/.dev
	$(PY) -m bench.run
