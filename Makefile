# Quick start: `make demo` (main job on built-in data) and `make test` (the test suite).
# Both set up .venv first (scripts/setup.sh), so they work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/dcmpnet demo

test: setup
	$(PY) -m pytest -q test

lint: setup
	$(VENV)/bin/ruff check dcmpnet_core dcmpnet_ros launch test setup.py

clean:
	rm -rf build *.egg-info .pytest_cache
