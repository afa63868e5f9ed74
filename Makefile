# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROD_STAMP := $(VENV)/.prod-installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: install demo test test-fast test-floor lint bench bench-triggerer-real docs clean e2e airflow airflow-stop airflow-status browser chaos dist wire-snapshot \
	install-prod prod-system airflow-prod e2e-prod defer-race chaos-stack

$(STAMP): pyproject.toml simulator/pyproject.toml requirements-dev.txt
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

# The provider at the LOWEST versions pyproject.toml allows for its direct dependencies (apache-airflow,
# common-compat, httpx, tenacity, pendulum) in a venv of its own, rebuilt every time: the unit tests, the example
# DAGs' import and a deferrable dag.test() of the job example against the simulator (about 2 min; uv's download
# cache stays in .uv-cache). `make test-floor RESOLUTION=highest` does the same with the newest versions.
RESOLUTION ?= lowest-direct
FLOOR_VENV := .venv-floor
FLOOR_PY := $(FLOOR_VENV)/bin/python
FLOOR_DEPS := apache-airflow apache-airflow-core apache-airflow-task-sdk apache-airflow-providers-common-compat \
	httpx tenacity pendulum

test-floor:
	rm -rf $(FLOOR_VENV)
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_PY) -m pip install --quiet --no-cache-dir uv
	UV_CACHE_DIR=$(CURDIR)/.uv-cache $(FLOOR_VENV)/bin/uv pip install --quiet --python $(FLOOR_PY) \
		--resolution $(RESOLUTION) -e . ./simulator \
		"pytest>=9" "pytest-asyncio>=1.0" "hypothesis>=6.100" "jsonschema>=4.20"
	@echo "Resolved with --resolution $(RESOLUTION):"
	@$(FLOOR_PY) -c "import importlib.metadata as m, sys; [print(f'  {d:40} {m.version(d)}') for d in sys.argv[1:]]" \
		$(FLOOR_DEPS)
	$(FLOOR_PY) -m pytest -q -p no:cacheprovider -rs tests/unit \
		"tests/integration/test_example_dags.py::test_example_dags_import_without_errors_or_deprecation_warnings" \
		"tests/integration/test_example_dags.py::test_example_job_dag_runs_end_to_end[deferrable]" \
		tests/integration/test_worker_death.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy airflow_provider_lightning

# Regenerate simulator/lightning_simulator/wire_models.json (strict wire mode) from the installed lightning-sdk.
wire-snapshot: install
	$(PY) scripts/install_sdk.py
	$(PY) scripts/wire_snapshot.py

# triggerer_scale.py runs 1,000 / 5,000 / 10,000 waits at a 30 s interval (about 15 min; --quick: under 1 min).
# Not part of it: `make bench-triggerer-real` (the same waits deferred into a real `airflow triggerer` process).
bench: install
	$(PY) benchmarks/requests_per_job.py
	$(PY) benchmarks/worker_time.py
	$(PY) benchmarks/import_cost.py
	$(PY) benchmarks/drive_throughput.py
	$(PY) benchmarks/triggerer_scale.py

# 1,000 and 5,000 job waits deferred into a REAL `airflow triggerer` (temp AIRFLOW_HOME, SQLite) against the
# simulator, ours vs a naive GET-per-task trigger side by side: requests per interval, triggerer RSS and CPU,
# detection lag, and the targets (about 10 min; `$(PY) benchmarks/triggerer_real.py --quick`: about 2 min).
bench-triggerer-real: install
	$(PY) benchmarks/triggerer_real.py

# 250 deferrable job tasks through real triggers against the simulator under injected faults, one simulator
# restart and one triggerer restart; prints a summary table, exits non-zero when a check fails (about 1 min).
chaos: install
	$(PY) scripts/chaos.py

# The Sphinx site (docs/ -> docs/_build/html), warnings are errors; -E re-reads every page so none is skipped.
# Then the pytest example the simulator page includes (docs/examples/testing) runs, so it cannot go stale.
$(DOCS_STAMP): $(STAMP) requirements-docs.txt
	$(PY) -m pip install --quiet -r requirements-docs.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -E -W --keep-going -b html docs docs/_build/html
	$(PY) -m pytest -q -p no:cacheprovider docs/examples

# Both distributions (provider, simulator): sdist + wheel in dist/, `twine check --strict`, the wheels' file lists.
dist: install
	$(PY) scripts/check_dist.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .uv-cache .airflow_home test-artifacts dist

# A real local Airflow on 127.0.0.1 (api-server, scheduler, triggerer, dag-processor; sqlite, LocalExecutor)
# plus the Lightning simulator, example_dags/ as the DAG folder; prints the UI address and the login.
airflow: install
	$(PY) scripts/airflow_stack.py start

airflow-stop:
	@if [ -x $(PY) ]; then $(PY) scripts/airflow_stack.py stop; else $(PYTHON) scripts/airflow_stack.py stop; fi

airflow-status: install
	$(PY) scripts/airflow_stack.py status

# Headless Debian Chromium for the browser part of the e2e (Playwright drives it; no browser download).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi
	@/usr/bin/chromium --version

# The real stack end to end: REST API (deferral, streamed logs, extra link, kill -> job stopped) and the UI in Chromium.
e2e: install browser
	$(PY) -m pytest -q -p no:cacheprovider -m e2e tests/e2e

# -- the production-shaped profile (docs/production-stack.rst) ------------------------------------------------
# Debian's PostgreSQL and Redis (apt-get only when one is missing); the Celery provider, celery[redis],
# psycopg2 and asyncpg in .venv (requirements-prod.txt, not part of requirements-dev.txt).
prod-system:
	@missing=; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="postgresql"; \
	[ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		echo "apt-get install$$missing"; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(PROD_STAMP): $(STAMP) requirements-prod.txt
	$(PY) -m pip install --quiet -r requirements-prod.txt
	touch $(PROD_STAMP)

install-prod: install prod-system $(PROD_STAMP)

# Like `make airflow`, production-shaped: PostgreSQL (as the system user airflow-pg) and Redis on 127.0.0.1,
# CeleryExecutor with two Celery workers, two triggerers, scheduler, dag-processor, api-server, the simulator.
# Same stack folder, so `make airflow-status` / `make airflow-stop` serve both profiles.
airflow-prod: install-prod
	$(PY) scripts/airflow_stack.py start --profile prod

# `make e2e` against the prod profile (its own stack folder, .airflow_home/e2e-prod).
e2e-prod: install-prod browser
	E2E_PROFILE=prod $(PY) -m pytest -q -p no:cacheprovider -m e2e tests/e2e

# How often Airflow fails a task that resumes right after deferring: RUNS runs of example_lightning_job on a
# fresh stack of each profile; prints `profile, runs, race failures` for each.
RUNS ?= 20
defer-race: install-prod
	$(PY) scripts/defer_race.py --profile local --runs $(RUNS)
	$(PY) scripts/defer_race.py --profile prod --runs $(RUNS)

# About 210 deferrable Lightning tasks (jobs, multi-machine jobs, deployments, sensors; succeeding, failing, timing
# out) on a fresh prod stack (.airflow_home/chaos-stack) under simulator faults, with one Celery worker and one
# triggerer kill -9'd and the scheduler restarted; prints a table (task states, duplicates, work left running,
# secrets in logs, triggerer takeover time), exits non-zero when a check fails (about 10 min).
chaos-stack: install-prod
	$(PY) scripts/chaos_stack.py
