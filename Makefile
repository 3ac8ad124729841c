# `make pipeline`: set up and run the whole pipeline (dvc repro) on the built-in digits.
# `make test`:     set up and run lint and the test suite (what CI runs).
# Both are idempotent: the virtual environment is rebuilt only when the pins change.

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
ACTIVATE := . $(VENV)/bin/activate

.PHONY: setup pipeline test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

pipeline: $(STAMP)
	$(ACTIVATE) && dvc repro

lint: $(STAMP)
	$(ACTIVATE) && ruff check . && ruff format --check .

test: lint
	$(ACTIVATE) && pytest

bench: $(STAMP)
	$(ACTIVATE) && python benchmarks/train_throughput.py

clean:
	rm -rf runs reports models registry data/raw data/processed .cache
