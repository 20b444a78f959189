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

.PHONY: install repro brain4 test lint compare plots docs clean-venv gpu-check gpu-bundle

# Create .venv (when missing) and install rcskd with its pinned dependencies.
install: $(STAMP)

# torch==2.13.0 is named in the same pip command as everything else so that no package can pull
# a newer (CUDA) torch build; pyproject.toml pins it too.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]" "torch==2.13.0"
	touch $(STAMP)

# Set up, then run the pipeline (dvc repro) on the embedded phantom dataset.
repro: $(STAMP)
	$(BIN)/dvc repro

# The pipeline on Brain-4 as the benchmarks run it (their chosen teacher recipe, pruning and
# distillation settings): one DVC experiment, long on a CPU. The dataset is looked for beside
# the repository (../shared/data/brain-tumor-mri) or at RCSKD_BRAIN4 (docs/data.md).
brain4: $(STAMP)
	$(BIN)/python benchmarks/brain4_experiment.py --run

# Experiments side by side: the headline metrics (reports/headline.json) in under 200 columns.
# Plain `dvc exp show` cannot be that narrow: it always adds every key of params.yaml and one
# hash column per dependency (see the README, "Comparing experiments").
COMPARE_COLUMNS := ^(Experiment|Created|budget|shipped|achieved\..*|acc\..*|macro_f1\.shipped|params_M\.shipped|ms_b1\.shipped)$$
compare: $(STAMP)
	$(BIN)/dvc exp show --no-pager --drop '.*' --keep '$(COMPARE_COLUMNS)'

# Every declared plot as one offline page (vega inline, .dvc/plots/offline.html) in dvc_plots/.
plots: $(STAMP)
	$(BIN)/dvc plots show

# The GPU acceptance check (benchmarks/gpu_check.py): run it on a machine with CUDA, with that
# machine's own Python (torch with CUDA); a gpu_bundle/ made here by `make gpu-bundle` brings the
# packages and the tiny prepared data it lacks. Writes reports/bench/gpu_check.json.
GPU_PYTHON ?= python3
GPU_BUNDLE := $(if $(wildcard gpu_bundle/wheels),--bundle gpu_bundle,)
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_BUNDLE)

# Where the package index is reachable: the wheels a bare GPU machine lacks (Python 3.12,
# manylinux) and the tiny phantom prepared here (its generator needs nilearn).
GPU_WHEELS := torch-pruning==1.6.1 stable-baselines3==2.9.2 gymnasium==1.4.0 cloudpickle \
	farama-notifications captum==0.9.0 onnx==1.23.1 onnxscript==0.7.2 onnx-ir ml-dtypes \
	pyyaml==6.0.4 tqdm==4.70.1
gpu-bundle: $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
		-d gpu_bundle/wheels $(GPU_WHEELS)
	$(BIN)/python benchmarks/gpu_check.py --prepare-only gpu_bundle/prepared

# The documentation site (site/index.html, offline): the generated pages first (params and
# command reference, results block, examples), then a strict MkDocs build.
docs: $(STAMP)
	$(BIN)/python docs/generate.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Set up, then run the test suite (the slow tests excluded; CI runs them too).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

# ruff check and format check of the code, tests, benchmarks and docs tooling.
lint: $(STAMP)
	$(BIN)/ruff check rcskd stages tests benchmarks docs .dvc/plots
	$(BIN)/ruff format --check rcskd stages tests benchmarks docs .dvc/plots

# Remove the virtualenv (the next command reinstalls).
clean-venv:
	rm -rf $(VENV)
