# Each target creates its own virtual environment in .venv from the pinned requirements.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench clean

$(VENV)/.run-deps: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps          ## set up, then run the pipeline once (emulator, paper broker, bundled data)
	$(PY) main.py run $(ARGS)

test: $(VENV)/.dev-deps         ## set up, then run the tests against the real Firestore emulator
	$(PY) -m pytest -q $(ARGS)

lint: $(VENV)/.dev-deps         ## ruff (pyflakes, pycodestyle, isort, bugbear, complexity) and mypy: zero findings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(VENV)/.dev-deps        ## print the benchmarks' figures
	$(PY) bench/pipeline_run.py
	$(PY) bench/commander_compute.py
	$(PY) bench/brokers.py
	$(PY) bench/cold_start.py
	$(PY) bench/llm_overhead.py
	$(PY) bench/backtest.py
	$(PY) bench/data_fetch.py
	$(PY) bench/order_lifecycle.py

clean:
	rm -rf $(VENV) .state
