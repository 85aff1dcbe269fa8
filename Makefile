# Two commands on a fresh machine:
#   make demo   set up .venv, train an LSTM on the Bach chorales inside music21, write samples
#               (MIDI, piano-roll PNG, and WAV audio)
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

# FluidSynth + a General MIDI SoundFont make rendered MIDI sound like its instruments
# (src/cadenza/io/render.py); Debian's Chromium + ChromeDriver run the studio page's browser test
# (tests/serve/test_studio_browser.py). Installed with apt-get when missing (as root or with
# password-less sudo); anywhere else renders fall back to the built-in synthesizer and the
# browser test skips (it fails under CI=true), so this step never fails.
RENDER_PACKAGES := fluidsynth fluid-soundfont-gm
BROWSER_PACKAGES := chromium chromium-driver
SOUNDFONTS := /usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/sounds/sf2/default-GM.sf2 \
              /usr/share/soundfonts/default.sf2 /usr/share/soundfonts/FluidR3_GM.sf2 \
              /usr/share/sounds/sf2/TimGM6mb.sf2 $(CADENZA_SOUNDFONT)
HAVE_RENDERER := command -v fluidsynth >/dev/null 2>&1 && \
                 for f in $(SOUNDFONTS); do [ -f "$$f" ] && exit 0; done; false
HAVE_BROWSER := command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1

.PHONY: setup system-deps demo serve test test-fast lint format bench clean
setup: system-deps $(VENV)/.installed

system-deps:
	@missing=""; \
	( $(HAVE_RENDERER) ) || missing="$(RENDER_PACKAGES)"; \
	( $(HAVE_BROWSER) ) || missing="$$missing $(BROWSER_PACKAGES)"; \
	if [ -z "$$(echo $$missing)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else sudo=none; fi; \
	if [ "$$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing $$(echo $$missing) with apt-get (MIDI rendering, studio browser test)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { $$sudo apt-get update -qq >/dev/null 2>&1 && \
	    $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1; }; \
	fi; \
	( $(HAVE_RENDERER) ) || echo "cadenza: no FluidSynth + General MIDI SoundFont (apt-get install \
	$(RENDER_PACKAGES) as root to add them); MIDI renders will use the built-in synthesizer"; \
	( $(HAVE_BROWSER) ) || echo "cadenza: no chromium + chromedriver (apt-get install \
	$(BROWSER_PACKAGES)); the studio browser test will skip (and fail under CI=true)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	@# numba compiles librosa's kernels on first use (about 30 s on 2 cores): once, here, into
	@# the venv's cache, rather than inside the first render, feature or test that needs them.
	@$(BIN)/python -c "from cadenza.io.audio import warm_up; \
	  print(f'cadenza: librosa kernels compiled once ({warm_up():.0f} s)')" || \
	  echo "cadenza: librosa warm-up failed; the first audio call will compile its kernels"
	touch $@

demo: setup
	$(BIN)/cadenza-train experiment=bach_lstm
	@echo "Samples (MIDI + PNG + WAV): outputs/bach_lstm/samples/  checkpoint: checkpoints/bach_lstm/latest.ckpt"

# Serve the demo checkpoint (and any other under checkpoints/) at http://127.0.0.1:8000
serve: setup
	@[ -e checkpoints/bach_lstm/latest.ckpt ] || $(MAKE) demo
	$(BIN)/cadenza-serve checkpoints=checkpoints

# Two pytest-xdist workers, one torch thread each (tests/conftest.py): on a 2-core machine the
# suite takes about 6.5 minutes this way against 8.5-10 in one process. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test-fast: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

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
