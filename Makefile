# Two commands for a new user: `make run` starts a node, `make test` runs the
# tests.  Each bootstraps .venv in the checkout first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The checkout comes first on the path, so code changes need no reinstall.
export PYTHONPATH := $(CURDIR)

.PHONY: run client demo test bench venv clean wheel-check docs

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet '.[test]'
	touch $(STAMP)

# The main job: a node named $(KERNEL) listening on 127.0.0.1:$(PORT) with
# the seed's ping server loaded.  `make client` starts the other half: it
# connects to 127.0.0.1:$(PORT), prints the exchange and exits 0.
KERNEL ?= otherbox
PORT ?= 9876
TWISTD := $(BIN)/python -c 'from twisted.scripts.twistd import run; run()' --nodaemon --pidfile=

run: $(STAMP)
	$(TWISTD) lightspeed --kernel $(KERNEL) --listen tcp:$(PORT):interface=127.0.0.1 \
	    --app lightspeed.examples.pingpong:server

client: $(STAMP)
	$(TWISTD) lightspeed --kernel testbox --listen none \
	    --connect tcp:host=127.0.0.1:port=$(PORT) --app lightspeed.examples.pingpong:client

demo: $(STAMP)
	$(BIN)/python -m lightspeed.demo

# mypy (configured in setup.cfg, with the zope plugin) first, then trial.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m twisted.trial lightspeed

# The Sphinx site, with its API reference, into docs/_build/html; any
# warning fails the build.  Installs the [docs] extra into .venv once.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -E -W --keep-going -q -b html docs docs/_build/html

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp .mypy_cache docs/_build

# What a user gets from `pip install lightspeed[test]`: build the wheel,
# install it in a fresh virtualenv outside the checkout and run its tests
# from / (a minute or two; not part of `make test`).
wheel-check: $(STAMP)
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	env -u PYTHONPATH $(BIN)/python -m pip wheel --quiet --no-deps -w "$$tmp/wheels" .; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	wheel=$$(ls "$$tmp"/wheels/lightspeed-*.whl); \
	env -u PYTHONPATH "$$tmp/venv/bin/python" -m pip install --quiet "$$wheel[test]"; \
	cd / && env -u PYTHONPATH "$$tmp/venv/bin/python" -m twisted.trial --temp-directory="$$tmp/_trial_temp" lightspeed

# Render docs/pictures/*.dot to SVG (needs Graphviz's `dot`; installs
# nothing).  The SVGs are committed, so only editors of a picture need it.
.PHONY: pictures
pictures:
	for f in docs/pictures/*.dot; do dot -Tsvg "$$f" -o "$${f%.dot}.svg" || exit 1; done
