# The README's two commands: `make demo` and `make test`. Both create .venv when missing and
# install with the pinned versions in constraints.txt, so a fresh install is reproducible.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test faults install install-test dev bench mutate workbench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

$(VENV)/.installed: $(BIN)/python setup.py constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## make demo: start the sandbox, run the nightly job and the weekly alert on it, print the results
demo: $(VENV)/.installed
	$(BIN)/python -m dunning_pipeline.demo $(DEMO_ARGS)

## make test: the test suite (PostgreSQL on 127.0.0.1:5432, or TEST_PG_URL)
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest dunning_pipeline_tests $(PYTEST_ARGS)

## make faults: the fault suite alone (also part of make test)
faults: $(VENV)/.installed-test
	$(BIN)/python -m pytest dunning_pipeline_tests -m faults $(PYTEST_ARGS)

## make dev: the Dagster UI on the sandbox (run `python -m dunning_pipeline.sandbox` first)
dev: $(VENV)/.installed
	$(BIN)/dagster dev -w workspace.yaml

## make workbench: the collections workbench on 127.0.0.1:8765 (users: DUNNING_WORKBENCH_USERS)
workbench: $(VENV)/.installed
	$(BIN)/python -m dunning_pipeline.workbench $(WORKBENCH_ARGS)

## make bench: the benchmark and BENCHMARKS.md (not part of the tests; BENCH_ARGS="--invoices 10000")
bench: $(VENV)/.installed-test
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## make mutate: mutation testing of the money and audit code (setup.cfg [mutmut]); long
mutate: $(VENV)/.installed-test
	$(PIP) install --quiet -c constraints.txt mutmut
	rm -rf mutants
	$(BIN)/mutmut run $(MUTATE_ARGS); $(BIN)/mutmut results

clean:
	rm -rf $(VENV) .demo .dagster_home *.egg-info mutants
