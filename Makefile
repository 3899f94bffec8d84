# Quick start: `make demo` (main job on built-in data) and `make test` (the test suite).
# Both set up .venv first (scripts/setup.sh), so they work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/dcmpnet demo

# The full suite, then the ROS-free layer again with the library versions of ROS 2 Humble
# (Python 3.10, NumPy 1.21) and Jazzy (Python 3.12, NumPy 1.26), where those Pythons exist.
test: setup
	$(PY) -m pytest -q test
	bash scripts/compat_ros_free.sh humble
	bash scripts/compat_ros_free.sh jazzy

lint: setup
	$(VENV)/bin/ruff check dcmpnet_core dcmpnet_ros launch test setup.py

clean:
	rm -rf build *.egg-info .pytest_cache
