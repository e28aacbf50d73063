# Two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := demo_out
# pytest-xdist worker processes for `make test` (CI has 2 cores); 0: the suite in one process
TEST_WORKERS ?= 2

.PHONY: setup test lint format demo clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -n $(TEST_WORKERS)

demo: setup
	bash demo_data/run_demo.sh $(PY) $(DEMO_OUT)

clean-demo:
	rm -rf $(DEMO_OUT)
