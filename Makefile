# MLP Playground: every set-up step lives here, so a fresh clone needs only
# Python 3.11+, make, node and npm.
HOST ?= 127.0.0.1
PORT ?= 8000
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

# One BLAS thread per process: the server runs one worker process per core, and
# small matmuls are faster single-threaded (see benchmarks/README.md).
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: run test bench setup clean

setup: $(VENV)/.installed static/vendor/htmx.min.js

# The venv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Front-end libraries come from the npm registry via package-lock.json and are
# copied into static/vendor/ (git-ignored), never committed.
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

static/vendor/htmx.min.js: node_modules/.installed
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

run: setup
	HOST=$(HOST) PORT=$(PORT) $(PY) -m app

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache
