# One entry point for people and CI. `make demo` and `make test` each set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/newsmon demo

test: $(STAMP)
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	# the store tests and the end-to-end test again, with the store on PostgreSQL + S3 (tests/services.py)
	NEWSMON_TEST_STORE=remote $(VENV)/bin/python -m pytest tests/store tests/test_end_to_end.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/bench_extraction.py

clean:
	rm -rf $(VENV) newsmon-demo newsmon-data
