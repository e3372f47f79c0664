# The two commands a newcomer needs (README):  make demo   |   make test
# Both set up .venv on first use (Python 3.11+, Java 17+, Maven for the Kafka jars).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(VENV)/bin/rtrank kafka fetch
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rtrank demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile tests/integration tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check streams model deploy tests
	$(VENV)/bin/ruff format --check streams model deploy tests
	$(VENV)/bin/lint-imports
