# The verbs a newcomer needs. Everything runs inside .venv, created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./data
CHROMIUM := /usr/bin/chromium

.PHONY: install browser serve test test-fast bench bench-peers constraints protos audit clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build (a CUDA build belongs in the Dockerfile only); every other
	# dependency at the version constraints.txt pins
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
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

test: $(STAMP) browser  ## the layering contracts, then the whole suite (what CI runs)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## unit tests only: no science runs, servers, browser, Ray, PostgreSQL, Redis, S3 or fuzzing
	$(BIN)/python -m pytest -m "not (slow or e2e or ui or ray or postgres or redis or s3 or fuzz)"

bench: $(STAMP)  ## benchmarks: print ratios measured side by side
	$(BIN)/python bench/warmup_speed.py
	$(BIN)/python -m bench.inference
	$(BIN)/python bench/jobs_scale.py
	$(BIN)/python -m bench.load --clients 32 --seconds 25 --api-processes 1 2

bench-peers: $(STAMP)  ## race warmzoo, KServe and MLServer on one model.onnx (their venvs .venv-peers* built on first use)
	$(BIN)/python -m bench.peers

constraints:  ## re-pin constraints.txt to the newest releases pyproject.toml allows (then: make test)
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '/^#/p' constraints.txt; .venv-pin/bin/python -m pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-pin

PROTOS := service/api/grpc/protos
PROTOS_PACKAGE := warmzoo.service.api.grpc.protos

# grpcio-tools as constraints.txt pins it: its protoc (33.x) writes code that protobuf 6.33, the
# runtime tritonclient allows, can load
protos: $(STAMP)  ## regenerate the gRPC stubs in service/api/grpc/protos from its .proto files (Triton's, verbatim)
	rm -f $(PROTOS)/*_pb2*.py $(PROTOS)/*_pb2*.pyi
	# -I at the folder: the files register as grpc_service.proto and model_config.proto, the names
	# tritonclient's own stubs use, so both load into one process
	$(BIN)/python -m grpc_tools.protoc -I $(PROTOS) --python_out=$(PROTOS) --pyi_out=$(PROTOS) \
		--grpc_python_out=$(PROTOS) $(PROTOS)/grpc_service.proto $(PROTOS)/model_config.proto
	rm $(PROTOS)/model_config_pb2_grpc.py  # no service in it
	# protoc writes top-level imports (`import model_config_pb2`): make them imports of the package
	sed -i -E 's/^import (grpc_service_pb2|model_config_pb2) as/from $(PROTOS_PACKAGE) import \1 as/' $(PROTOS)/*_pb2*.py*

audit: $(STAMP)  ## known vulnerabilities of the pinned dependencies (pip-audit asks PyPI's advisories)
	$(BIN)/python -m pip install --quiet 'pip-audit>=2.7'
	# --strict: a package that could not be checked fails the audit instead of passing silently
	$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict --progress-spinner off

clean:
	rm -rf $(VENV) .venv-pin .venv-peers .venv-peers-mlserver build *.egg-info .pytest_cache
