# The verbs a newcomer needs. Everything runs inside .venv, created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./data
CHROMIUM := /usr/bin/chromium

.PHONY: install browser serve test test-fast bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build (a CUDA build belongs in the Dockerfile only)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install warmzoo with its test tools

serve: $(STAMP)  ## run the API, the worker(s) and the starter catalogue on the embedded default
	$(BIN)/warmzoo serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

browser:  ## Debian's Chromium for the UI tests (tests/ui); installed when missing and run as root
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get install -y --no-install-recommends chromium \
		|| { apt-get update && apt-get install -y --no-install-recommends chromium; }; \
	else echo "$(CHROMIUM) is missing: run 'sudo make browser' (the UI tests skip without it)"; fi

test: $(STAMP) browser  ## the whole suite (what CI runs)
	$(BIN)/python -m pytest

test-fast: $(STAMP) browser  ## skip the minutes-long science checks
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)  ## benchmarks: print ratios measured side by side
	$(BIN)/python bench/warmup_speed.py
	$(BIN)/python -m bench.inference
	$(BIN)/python bench/jobs_scale.py
	$(BIN)/python -m bench.load --clients 32 --seconds 25

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
