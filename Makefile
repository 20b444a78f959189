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

.PHONY: install repro brain4 test lint compare plots clean-venv

install: $(STAMP)

# torch==2.13.0 is named in the same pip command as everything else so that no package can pull
# a newer (CUDA) torch build; pyproject.toml pins it too.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]" "torch==2.13.0"
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# The pipeline on Brain-4 (../shared/data/brain-tumor-mri) as the benchmarks run it, with a
# teacher clearly stronger than its pruned student: one DVC experiment (long on a CPU).
brain4: $(STAMP)
	$(BIN)/python benchmarks/brain4_experiment.py --run

# Experiments side by side: the headline metrics (reports/headline.json) in under 200 columns.
# Plain `dvc exp show` cannot be that narrow: it always adds every key of params.yaml and one
# hash column per dependency (see the README, "Comparing experiments").
COMPARE_COLUMNS := ^(Experiment|Created|budget|achieved\..*|acc\..*|macro_f1\.student|params_M\.student|ms_b1\.student)$$
compare: $(STAMP)
	$(BIN)/dvc exp show --no-pager --drop '.*' --keep '$(COMPARE_COLUMNS)'

# Every declared plot as one offline page (vega inline, .dvc/plots/offline.html) in dvc_plots/.
plots: $(STAMP)
	$(BIN)/dvc plots show

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

lint: $(STAMP)
	$(BIN)/ruff check rcskd stages tests benchmarks .dvc/plots
	$(BIN)/ruff format --check rcskd stages tests benchmarks .dvc/plots

clean-venv:
	rm -rf $(VENV)
