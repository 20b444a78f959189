# The two commands a new user needs (both create or reuse the local virtualenv .venv):
#   make repro   set up, then run the pipeline (dvc repro) on the embedded phantom
#   make test    set up, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands call `python`: make it the virtualenv's.
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg

.PHONY: install repro test lint clean-venv

install: $(STAMP)

# torch==2.13.0 is named in the same pip command as everything else so that no package can pull
# a newer (CUDA) torch build; pyproject.toml pins it too.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]" "torch==2.13.0"
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check rcskd stages tests benchmarks tools
	$(BIN)/ruff format --check rcskd stages tests benchmarks tools

clean-venv:
	rm -rf $(VENV)
