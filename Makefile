# Two commands for a fresh machine with Python 3.10+ (see README):
#   make main   - set up .venv, find or download HC18, evaluate the shipped model, write a submission
#   make test   - set up .venv with the test extras, run every test and every notebook (quick mode)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned: an unpinned torch pulled in by `pip install -e .` may be a multi-GB
# CUDA build. Override for your machine, e.g. make main TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
MAIN_ARGS ?=

.PHONY: main test venv venv-dev clean-cache

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e ".[notebooks,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.base
venv-dev: $(VENV)/.dev

main: $(VENV)/.base
	$(PY) -m fetalhead main $(MAIN_ARGS)

test: $(VENV)/.dev
	FETALHEAD_QUICK=1 MPLBACKEND=Agg $(PY) -m pytest -q --nbval-lax tests notebooks

clean-cache:
	rm -rf .cache
