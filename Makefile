# refundguard: `make run` starts everything locally, `make test` runs every test. Both set up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CHECKOV_VENV ?= .venv-checkov

.PHONY: help setup browser run test test-unit test-integration test-e2e lint format bench screenshots clean

help:
	@echo "make run    - set up, start the emulators, every function and the store stand-ins locally (Ctrl-C stops all)"
	@echo "              ports: PORT_BASE=9081 make run moves all twelve (9081..9093); FOO_PORT=N moves one;"
	@echo "              .venv/bin/python scripts/run_local.py --help lists them"
	@echo "make test   - set up, lint, run every test (Firestore emulator and headless Chromium included)"
	@echo "make test-unit | test-integration | test-e2e - one layer of tests (unit: no emulator, seconds)"
	@echo "               PYTEST_ARGS='-k name -x' passes arguments to pytest in every test target"
	@echo "make setup  - create .venv and install the pinned dependencies (run and test do it first)"
	@echo "make lint   - ruff check and ruff format --check"
	@echo "make format - ruff format (rewrites the files)"
	@echo "make bench  - run the benchmarks under bench/"
	@echo "make screenshots - the admin console's screenshots into docs/console/ (needs the browser)"
	@echo "make browser - install chromium and chromium-driver when missing (root with apt)"
	@echo "make clean  - remove virtualenvs and caches"

setup: $(VENV)/.installed

# Editable installs through hatchling write a .pth into the virtualenv and nothing into the tree.
$(VENV)/.installed: requirements.txt functions/requirements.txt pyproject.toml cli/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e . -e ./cli
	@touch $@

$(CHECKOV_VENV)/.installed: .ci/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -r .ci/checkov-requirements.txt
	@touch $@

# Debian's chromium and chromium-driver for the console's browser tests: installed when missing and
# possible (root, apt-get), else the tests are skipped loudly (failed with REFUNDGUARD_REQUIRE_EMULATOR=1).
browser:
	@sh scripts/ensure_browser.sh

run: setup
	$(PY) scripts/run_local.py

lint: setup
	$(VENV)/bin/ruff check functions dev cli tests bench scripts examples
	$(VENV)/bin/ruff format --check functions dev cli tests bench scripts examples

format: setup
	$(VENV)/bin/ruff format functions dev cli tests bench scripts examples

test: setup $(CHECKOV_VENV)/.installed browser lint
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest $(PYTEST_ARGS)

# One layer at a time: tests/unit (no emulator), tests/integration (the real emulators),
# tests/e2e (the whole local stack, headless Chromium).
test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: setup browser
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

screenshots: setup browser
	$(PY) scripts/console_screenshots.py

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache .hypothesis .run
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
