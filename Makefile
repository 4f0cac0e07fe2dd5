# The two commands: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
RUN    ?= runs/eng-pol
MODEL  ?= models/eng-pol

.PHONY: serve test train export export-fp32 evaluate bench bench-gpu clean load soak compose-test compose-scale-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.serve: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[serve]"
	touch $@

$(VENV)/.load: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[serve,load]"
	touch $@ $(VENV)/.serve

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.serve $(VENV)/.load

## serve the shipped model on TRANSLATOR_HOST:TRANSLATOR_PORT (default 127.0.0.1:8000)
serve: $(VENV)/.serve
	$(PY) -m service

## run the whole test suite
test: $(VENV)/.dev
	$(PY) -m pytest -q

## rebuild the shipped model: the combined corpus (Tatoeba weighted 3x), then the small LSTM in chunks of about
## 100 minutes on 2 CPU cores (run it again to continue; about 17 epochs in all: docs/quality.md)
train: $(VENV)/.dev
	test -f $(RUN)/train.tsv || $(PY) -m export corpus --out $(RUN) --repeat eng-pol.tsv=3
	$(PY) -m export train --out $(RUN) --cell lstm --emb 128 --enc-hidden 128 --dec-hidden 256 --attn 128 \
	    --placeholders --vocab 8000 --max-len 100 --epochs 40 --patience 3 --max-minutes 100 --resume

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

GPU_VENV ?= .venv-gpu
ORT_GPU  ?= onnxruntime-gpu[cuda,cudnn]
## the CUDA figures (docs/benchmarks/gpu.md, gpu.json) in under 5 minutes, on a machine with an NVIDIA GPU; first
## installs the service into its own virtualenv $(GPU_VENV) with $(ORT_GPU) in place of onnxruntime (a large
## download: the CUDA 12 / cuDNN 9 runtime wheels; ORT_GPU=onnxruntime-gpu==X.Y picks a release). Without a
## usable GPU it stops at once (exit 2) and writes nothing
bench-gpu: $(GPU_VENV)/.gpu
	$(GPU_VENV)/bin/python -m bench.gpu

$(GPU_VENV)/.gpu: pyproject.toml
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(GPU_VENV)/bin/python -m pip install --quiet -e ".[serve]" httpx
	$(GPU_VENV)/bin/python -m pip uninstall --yes --quiet onnxruntime onnxruntime-gpu
	$(GPU_VENV)/bin/python -m pip install --quiet "$(ORT_GPU)"
	touch $@

HOST     ?= http://127.0.0.1:8000
LOAD_OUT ?= load/results
## Locust against a running service (HOST=...): step profile 10..60 users over 3 min, SLO gates (exit 1 if missed);
## writes $(LOAD_OUT)/load_stats*.csv, load.html, load.png (latency percentiles, throughput). LOAD_ARGS: more flags
load: $(VENV)/.load
	mkdir -p $(LOAD_OUT)
	$(PY) -m locust -f load/locustfile.py,load/shape.py --headless --only-summary --host $(HOST) \
	  --csv $(LOAD_OUT)/load --csv-full-history --html $(LOAD_OUT)/load.html \
	  --slo-report $(LOAD_OUT)/load_slo.json $(LOAD_ARGS); \
	  rc=$$?; $(PY) load/plot.py $(LOAD_OUT)/load; exit $$rc

## 10 minutes of steady Locust load: passes with zero failures, the SLO gates met and RSS growing < 10% after
## warm-up; serves the shipped model itself unless HOST=... is given. SOAK_ARGS: more flags (load/soak.py --help)
soak: $(VENV)/.load
	$(PY) load/soak.py $(if $(filter command line environment,$(origin HOST)),--host $(HOST)) \
	  --csv $(LOAD_OUT)/soak $(SOAK_ARGS)

## docker-compose.yml brought up for real (needs root; starts Debian's Docker engine if none runs): builds the
## images offline, translates through the published port, checks Prometheus scraped the service, runs the
## `load` profile briefly, tears down (deploy/compose_test.sh; a recorded run: docs/compose-test.log)
compose-test: | $(PY)
	bash deploy/compose_test.sh

## deploy/compose.scale.yml brought up for real, offline (needs root; starts Debian's Docker engine if none runs):
## 2 translator replicas behind HAProxy, Locust load through it while the replicas restart one at a time and then
## roll to a new model version; passes with zero failed requests, traffic on every replica and the dashboard's
## queries summing across them (deploy/compose_scale_test.sh; a recorded run: docs/compose-scale-test.log)
compose-scale-test: $(VENV)/.load
	bash deploy/compose_scale_test.sh
