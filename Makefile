# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e .
	touch $(STAMP)

install: $(STAMP)

# The simulator plus real Airflow (`airflow dags test`, deferrable) running example_dags/ end to end.
demo: install
	$(PY) scripts/demo.py

# Everything: unit, simulator, official-SDK compatibility, integration and dag.test() tests.
test: install
	$(PY) scripts/install_sdk.py
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -x -m "not sdk and not airflow_db"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy airflow_provider_lightning

bench: install
	$(PY) benchmarks/requests_per_job.py
	$(PY) benchmarks/worker_time.py
	$(PY) benchmarks/import_cost.py

clean:
	rm -rf $(VENV) .airflow_home test-artifacts
