# ZartsAlgo Ops — the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# Find a Python >= 3.12 (Django 6 needs it): $PYTHON if given, then python3.13/3.12 on PATH,
# then pyenv's versions, then plain python3. Stops with a clear message if none qualifies.
define FIND_PYTHON
for c in $${PYTHON:-} python3.13 python3.12 \
         $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV) \
         /usr/local/bin/python3.12 /usr/bin/python3.12 python3; do \
  [ -n "$$c" ] || continue; \
  if command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
    command -v "$$c"; exit 0; fi; \
done; exit 1
endef

.PHONY: help
help:
	@echo "make run     set up .venv, migrate SQLite, load demo data, serve on http://$(HOST):$(PORT)/"
	@echo "make test    run the whole test suite (uses DATABASE_URL / REDIS_URL when set)"
	@echo "make lint    ruff check + format check + makemigrations --check"
	@echo "make worker / make beat   Celery processes (need REDIS_URL)"

$(VENV)/.installed: pyproject.toml
	@py=$$($(FIND_PYTHON)) || { echo "ERROR: Python >= 3.12 is required (Django 6). Install it (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2; exit 1; }; \
	echo "Using $$py ($$($$py --version))"; \
	[ -x $(PY) ] && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { rm -rf $(VENV); $$py -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

.PHONY: install
install: $(VENV)/.installed

.PHONY: run
run: install
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py seed_demo
	DEBUG=1 $(PY) manage.py seed_demo_webhooks
	DEBUG=1 $(PY) manage.py seed_demo_workflows
	# The embedded beat (delayed workflow steps, sweepers) runs beside the server and stops with it.
	DEBUG=1 $(PY) manage.py run_scheduler & trap 'kill $$!' EXIT; DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

.PHONY: test
test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: lint
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

.PHONY: worker
worker: install
	$(VENV)/bin/celery -A zartsalgo worker -Q ingest,workflows,outbound,default --loglevel INFO

.PHONY: beat
beat: install
	$(VENV)/bin/celery -A zartsalgo beat --loglevel INFO --schedule var/celerybeat-schedule

.PHONY: bench
# Lead admin list at 1M leads on MariaDB vs a stock-Django baseline (see bench/README.md).
# Uses its own database zartsalgo_bench on 127.0.0.1 unless DATABASE_URL is set; BENCH_ARGS="--leads 100000 ..." to vary.
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

.PHONY: bench-workflows
# Workflow engine step runs/s vs Celery no-op tasks/s, and scheduler claim time at 10k vs 1M
# enrollments (bench/workflows.py; MariaDB + Redis on 127.0.0.1). Args: BENCH_WORKFLOWS_ARGS.
bench-workflows: install
	$(PY) bench/workflows.py $(BENCH_WORKFLOWS_ARGS)

.PHONY: bench-webhooks
# Webhook ingest (gunicorn + wrk, c=32), Celery normalize/apply throughput and CSV import on MariaDB
# (see bench/README.md). Own database zartsalgo_bench_webhooks, Redis db 9; starts and stops all it
# needs. Installs wrk (Debian) if missing. BENCH_WEBHOOKS_ARGS="--duration 10 --skip-csv" to vary.
bench-webhooks: install
	@command -v wrk >/dev/null 2>&1 || { echo "bench-webhooks: installing wrk (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	$(PY) bench/webhooks.py $(BENCH_WEBHOOKS_ARGS)

.PHONY: bench-scale
# Portal dashboard/reports, the admin client report and the admin lead list at 1M leads on MariaDB,
# p50/p95/p99 + queries vs a one-row-SELECT baseline (bench/portal_scale.py, bench/README.md "Scale").
# Fills zartsalgo_scale first if needed (bench/gen_leads.py: ~15-20 min once; a no-op afterwards).
# BENCH_SCALE_GEN_ARGS="--leads 100000" / BENCH_SCALE_ARGS="--requests 50 --explain" to vary.
bench-scale: install
	$(PY) bench/gen_leads.py $(BENCH_SCALE_GEN_ARGS)
	$(PY) bench/portal_scale.py $(BENCH_SCALE_ARGS)

.PHONY: clean
clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
