# MLP Playground: every set-up step lives here, so a fresh clone needs only
# Python 3.11+, make, node and npm.
HOST ?= 127.0.0.1
PORT ?= 8000
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest processes (pytest-xdist). Most tests wait on servers, workers and browsers, not on a
# core: one process used a quarter of 2 cores. Whole files go to one process (loadfile), so a
# file's module fixtures (servers, a browser) start once. TEST_JOBS=0 runs in this process.
TEST_JOBS ?= 2

# One BLAS thread per process: the server runs one worker process per core, and
# small matmuls are faster single-threaded (see benchmarks/README.md).
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: run test bench setup clean cluster

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

# A cluster on loopback: two nodes, nginx, Redis and PostgreSQL from Debian's packages
# (deploy/cluster.py), all at one address, 8080 unless PORT=… is given. Ctrl-C stops it all.
CLUSTER_PORT := $(if $(filter file,$(origin PORT)),8080,$(PORT))
cluster: setup
	$(PY) -m deploy.cluster --port $(CLUSTER_PORT)

test: setup lint-py lint-js test-js
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# Python: ruff's lint rules and formatter over the repo, mypy over app/ (pyproject.toml), zero findings.
.PHONY: lint-py
lint-py: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The page's scripts: ESLint's recommended rules (eslint.config.js), zero findings.
.PHONY: lint-js test-js
lint-js: node_modules/.installed
	node_modules/.bin/eslint static/js tests/js eslint.config.js

# JS unit tests (node's own runner) on fixtures Python writes into a fresh temporary
# directory first (tests/unit/test_js_fixtures.py); the directory goes away afterwards.
test-js: setup
	dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(PY) tests/unit/test_js_fixtures.py "$$dir" && JS_FIXTURES="$$dir" node --test tests/js/

# The README's screenshots: every view (docs/make_screenshots.py) and every lesson step.
.PHONY: screenshots
screenshots: setup
	$(PY) docs/make_screenshots.py
	LESSON_SCREENSHOTS=docs $(PY) -m pytest tests/e2e/test_lesson_walk.py -k "test_walk or present_with_the_panel"

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache
