# brandbot: the two commands a new user types are `make demo` and `make test`.
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup system-packages test lint demo examples screenshots freeze-release clean

help:
	@echo "make demo   - render the retail example and run it with the reference middleware"
	@echo "make test   - lint, install missing system packages (Chromium), then run every test"
	@echo "make examples - regenerate every example brand into build/examples"
	@echo "make screenshots - save a screenshot of each example brand to docs/img"
	@echo "make freeze-release TAG=vX.Y.Z - keep release vX.Y.Z's template for the copier update test"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check generator tests template migrations

# The Debian packages the tests need (Chromium for the browser tests), listed in .ci/system-packages:
# installed with apt-get when run as root, otherwise make stops with the one command to run.
system-packages:
	.ci/install-system-packages

test: lint system-packages
	$(BIN)/python -m pytest

# DEMO_ARGS passes options through, e.g. make demo DEMO_ARGS="--port 9000 --middleware-port 9001".
demo: setup
	$(BIN)/brandbot demo $(DEMO_ARGS)

examples: setup
	$(BIN)/brandbot examples

clean:
	rm -rf build .pytest_cache

screenshots: setup
	$(BIN)/brandbot screenshots --out docs/img

# Maintainers, after tagging a release: its template becomes tests/data/previous-release.bundle.
freeze-release: setup
	@test -n "$(TAG)" || { echo "usage: make freeze-release TAG=vX.Y.Z"; exit 2; }
	$(BIN)/python -m brandbot.release $(TAG)
