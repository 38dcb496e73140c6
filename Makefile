# Two commands do all set-up on a fresh clone:
#   make run    serving-only virtualenv, then the shipped model on http://127.0.0.1:8000
#   make test   virtualenv with every extra, then the whole test suite
# The interpreter the virtualenv is made from: Debian's python3.11 when it has venv, else
# python3. Debian builds it with profile-guided optimisation and LTO and links it statically;
# pyenv's default build (this machine's python3) is neither, and a /predict request runs
# ~19% fewer instructions on Debian's (docs/performance.md). Override with
# `make run PYTHON=...`; an existing .venv keeps its interpreter until `make clean`.
# (Expanded only by the recipe that makes the virtualenv, so other targets never probe.)
PYTHON ?= $(shell /usr/bin/python3.11 -c 'import ensurepip, venv' 2>/dev/null && echo /usr/bin/python3.11 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Exact versions the suite last passed with; pyproject.toml holds the allowed ranges.
CONSTRAINTS := constraints.txt
# tritonclient[grpc] for the gRPC end-to-end test, in a virtualenv of its own: its grpcio and
# protobuf pins clash with TensorFlow's. If it cannot be made, that test is skipped and says why.
TRITON_VENV := .venv-triton

.PHONY: run test export lint bench containers clean help

help:
	@echo "make run | test | export ARGS='...' | lint | bench | containers | clean"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.serve: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.all: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[export,dev,tracing]'
	touch $@ $(VENV)/.serve

run: $(VENV)/.serve
	$(BIN)/python -m service

$(TRITON_VENV)/.ok: tests/e2e/triton-client.txt
	-$(PYTHON) -m venv $(TRITON_VENV) && $(TRITON_VENV)/bin/python -m pip install -q -r tests/e2e/triton-client.txt \
		&& touch $@

test: $(VENV)/.all $(TRITON_VENV)/.ok
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmark (docs/performance.md): needs wrk, h2load (nghttp2-client, for the gRPC rows;
# both installed if missing) and 2 cores; ~5 minutes.
bench: $(VENV)/.serve
	@command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; }
	@command -v h2load >/dev/null || { echo "installing h2load"; apt-get install -y -q nghttp2-client >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q nghttp2-client >/dev/null; }; }
	$(BIN)/python -m bench.run $(ARGS)

# Retrain and export a new bundle, e.g. make export ARGS='--epochs 5 --version 2'
export: $(VENV)/.all
	$(BIN)/python -m model_export $(ARGS)

# The container stage CI runs (needs root; installs docker.io, debootstrap and the linters).
containers:
	bash .ci/containers.sh

lint: $(VENV)/.all
	$(BIN)/ruff check service model_export tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(TRITON_VENV) .pytest_cache .mypy_cache .ruff_cache
