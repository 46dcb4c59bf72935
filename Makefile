# Sentinel Lakehouse -- thin wrapper: the logic lives in deploy/local/*.sh
SHELL := /bin/bash
STACK := deploy/local/stack.sh
VENV  := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help up down status logs services jars migrate venv lint test test-unit test-first-run test-reliability submit producer bench bench-full soak demo demo-stop

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: ## whole local stack: venv, jars, Postgres+migrations+admin key, Redis, Kafka, S3, API
	@$(STACK) up

down: ## stop exactly what `make up`/`make services` started
	@$(STACK) down

status: ## one line per service: up/down, port, pid, log
	@$(STACK) status

logs: ## tail the logs (S=kafka for one service)
	@$(STACK) logs $(S)

services: ## what the tests need: venv, jars, Postgres+migrations, Redis, Kafka, S3
	@$(STACK) services

venv: ## .venv with pip install -e '.[dev]' (skipped when up to date)
	@$(STACK) venv

jars: ## JVM jars from Maven Central into .sentinel/jars (skipped when up to date)
	@$(STACK) jars

migrate: ## start Postgres if needed and run the catalog migrations
	@$(STACK) migrate

.PHONY: superset superset-provision
superset: ## start Superset on :8088 (own venv .venv-superset; admin password in .sentinel/)
	@bash deploy/local/superset.sh start

superset-provision: ## (re)provision Superset's databases, datasets, charts, dashboards
	@$(STACK) superset-provision

demo: ## the demo pipeline (Payment Transactions, 2 rules) active + a producer at 5 events/s
	@$(STACK) demo

demo-stop: ## stop the demo producer (the pipeline stays; pause it via the API)
	@$(STACK) demo-stop

submit: ## run one pipeline's stream in the foreground, outside Dagster (ID=N)
	@test -n "$(ID)" || { echo "usage: make submit ID=<pipeline id>" >&2; exit 2; }
	$(VENV)/python -m streaming.job --pipeline-id $(ID)

producer: ## send generated events to a pipeline (ID=1 RATE=100 COUNT=1000; START=iso: backfill)
	$(VENV)/python -m streaming.producer --pipeline-id $(or $(ID),1) --rate $(or $(RATE),100) \
	  --count $(or $(COUNT),1000) $(if $(START),--start $(START))

bench: services ## throughput vs floor vs the seed's way, rule scaling, latency, API (minutes)
	$(VENV)/python -m bench.run

soak: services ## the stream at RATE events/s for MINUTES (default 30): memory, lag, latency, files
	$(VENV)/python -m bench.soak --rate $(or $(RATE),1000) --minutes $(or $(MINUTES),30)

bench-full: services ## the long benchmark runs (bigger backlog, 500 rules, longer latency runs)
	$(VENV)/python -m bench.run --full

lint: venv ## ruff + mypy
	$(VENV)/ruff check .
	$(VENV)/mypy

PYTEST_RC := .sentinel/run/pytest.rc
# Two pytest-xdist workers by default: each test file (and the lakehouse+Superset, drill and
# e2e suites) whole on one worker, in the order tests/conftest.py gives (--no-loadscope-reorder:
# longest groups first); the run waits on JVM starts, sensors and services as much as on CPU.
# PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder,)

test: services lint ## every test (unit, integration, e2e) against the real services
	@rm -f $(PYTEST_RC)
	$(VENV)/pytest $(XDIST) \
	  -m '(unit or integration or e2e or reliability) and not first_run'; \
	  rc=$$?; echo $$rc > $(PYTEST_RC); exit $$rc

test-unit: venv ## unit tests only (no services)
	$(VENV)/pytest -m unit

test-first-run: services ## what only make up's whole stack shows: its summary, Superset provisioned by its Dagster (browser)
	$(VENV)/pytest -m first_run tests/e2e/test_make_up.py

test-reliability: services ## outage drills, long form (60 s outages, >= 10 SIGKILLs)
	SENTINEL_DRILL_LONG=1 $(VENV)/pytest -m reliability tests/reliability
