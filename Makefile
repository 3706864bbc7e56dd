# Common commands. `make demo` and `make test` work on a fresh machine (see README).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
EXTRAS  ?= dev,torch,ray,models
PYTEST_ARGS ?=
export PATH := $(PATH):/usr/local/go/bin

.PHONY: setup demo test test-fast lint typecheck importlint testenv mxnet browser bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

# The main example on the embedded default: the CLI autostarts a local server in a fresh home,
# runs hello, the 2-replica gang and the over-memory job, shows their status, and stops the server.
demo: setup
	bash tools/demo.sh

# Everything the tests need (Python deps, the Go-built Kubernetes test control plane, the MXNet
# environment, Debian's chromium for the dashboard's browser tests), then the whole suite.
test: setup testenv mxnet browser
	$(BIN)/ruff check jobsched workers kernels tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy jobsched/core jobsched/spec
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q tests/unit tests/core tests/sim tests/rightsizing -m "not slow"

testenv:
	@if command -v go >/dev/null 2>&1; then bash tools/k8s-testenv/testenv.sh build; \
	 else echo "go not found: Kubernetes tests will be skipped"; fi

mxnet:
	@bash tools/setup_mxnet_env.sh || echo "MXNet environment not available: MXNet tests will be skipped"

# Debian's chromium for the dashboard's browser tests (apt-get when missing; never a browser download).
browser:
	@bash tools/install_chromium.sh || echo "chromium not available: dashboard browser tests will be skipped"

lint: setup
	$(BIN)/ruff check jobsched workers kernels tests benchmarks
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy jobsched/core jobsched/spec

importlint: setup
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache benchmarks/out
