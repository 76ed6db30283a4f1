# Two commands on a fresh clone: `make demo` (the main job) and `make test`;
# `make demo-hindi` runs the same notebooks on the Hindi preset (embedded-hindi).
# Both create or reuse the virtual environment in .venv/ and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-hindi test gpu-check venv clean-venv

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

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

# On a machine with one CUDA GPU: CUDA tests, notebooks on CUDA and the blog's memory claims
# (at most 8 minutes) -> benchmarks/results/gpu_check.json; see benchmarks/gpu_check.py.
gpu-check: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/gpu_check.py

clean-venv:
	rm -rf $(VENV)
