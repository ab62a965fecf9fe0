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

# The dashboard test drives Debian's chromium (Playwright cannot download its own browser here).
$(VENV)/.browser:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
	  || echo "warning: could not install Debian's chromium (not root?): the dashboard test will be skipped"
	@touch $@

test: $(VENV)/.dev-deps $(VENV)/.browser  ## set up, then run the tests against the real Firestore emulator
	$(PY) -m pytest -q $(ARGS)

lint: $(VENV)/.dev-deps         ## ruff (pyflakes, pycodestyle, isort, bugbear, complexity) and mypy: zero findings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(VENV)/.dev-deps        ## print the benchmarks' figures
	$(PY) bench/pipeline_run.py
	$(PY) bench/commander_compute.py
	$(PY) bench/store_round_trips.py
	$(PY) bench/brokers.py
	$(PY) bench/cold_start.py
	$(PY) bench/llm_overhead.py
	$(PY) bench/backtest.py
	$(PY) bench/data_fetch.py
	$(PY) bench/order_lifecycle.py
	$(PY) bench/api.py

clean:
	rm -rf $(VENV) .state
