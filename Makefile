# Two commands for a new user: `make run` starts a node, `make test` runs the
# tests.  Each bootstraps .venv in the checkout first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The checkout comes first on the path, so code changes need no reinstall.
export PYTHONPATH := $(CURDIR)

.PHONY: run test bench venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m lightspeed.demo

test: $(STAMP)
	$(BIN)/python -m twisted.trial lightspeed

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp
