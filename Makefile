# Two commands on a fresh machine:
#   make demo   set up .venv, train an LSTM on the Bach chorales inside music21, write samples
#   make test   set up .venv and run the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
# Elsewhere: make TORCH_SPEC=torch TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cpu
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
# Real datasets: $CADENZA_DATA, else ../shared/data (this workplace), else ./data
CADENZA_DATA ?= $(firstword $(wildcard $(abspath ../shared/data)) $(CURDIR)/data)
export CADENZA_DATA

.PHONY: setup demo test test-fast lint format bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/cadenza-train experiment=bach_lstm
	@echo "Samples (MIDI + PNG): outputs/bach_lstm/samples/  checkpoint: checkpoints/bach_lstm/latest.ckpt"

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/polyphonic_nll.py

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache
