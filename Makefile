# Two commands on a fresh clone: `make demo` (the main job) and `make test`;
# `make demo-hindi` runs the same notebooks on the Hindi preset (embedded-hindi).
# Both create or reuse the virtual environment in .venv/ and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-hindi test test-fast test-browser app engines gpu-check venv clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m helpers.demo

demo-hindi: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m helpers.demo --preset embedded-hindi --run-name demo-hindi

# faster-whisper and whisper.cpp (pywhispercpp), the engines users deploy to: optional for
# `--engine faster-whisper` and `--to ggml` quantized; `make test` installs them (their tests
# and benchmark rows run them for real).
ENGINES_STAMP := $(VENV)/.installed-engines

$(ENGINES_STAMP): requirements-engines.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-engines.txt
	touch $(ENGINES_STAMP)

engines: $(ENGINES_STAMP)

# The whole suite (every tier but browser) on two pytest-xdist workers; the tests of one file,
# and those sharing a session run (tests/conftest.py SHARED_FIXTURES), stay on one worker.
test: $(STAMP) $(ENGINES_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2 --dist loadgroup --durations=20 tests

# The unit tier alone, for development: pure functions and tiny random models (under 3 minutes).
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "unit and not (integration or notebooks or benchmarks)" tests

# The web page: `make app` serves runs/demo/adapter (after `make demo`) on 127.0.0.1:7860;
# `make app ADAPTER=DIR` another adapter. gradio is installed for the page only.
ADAPTER ?= runs/demo/adapter
APP_STAMP     := $(VENV)/.installed-app
BROWSER_STAMP := $(VENV)/.installed-browser

$(APP_STAMP): requirements-app.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-app.txt
	touch $(APP_STAMP)

$(BROWSER_STAMP): requirements-browser.txt requirements-app.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-browser.txt
	touch $(APP_STAMP) $(BROWSER_STAMP)

app: $(APP_STAMP)
	$(PY) -m helpers.app --adapter $(ADAPTER)

# The page in headless Chromium (tests/browser/; `make test` leaves them out). Needs Debian's
# chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does it).
test-browser: $(BROWSER_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/browser

# On a machine with one CUDA GPU: CUDA tests, notebooks on CUDA and the blog's memory claims
# (at most 8 minutes) -> benchmarks/results/gpu_check.json; see benchmarks/gpu_check.py.
gpu-check: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/gpu_check.py

clean-venv:
	rm -rf $(VENV)
