# sverm: `make run` serves the embedded default, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
SVERM_ADMIN_EMAIL ?= admin@local
SVERM_ADMIN_PASSWORD ?=
# The bootstrap workspace's plan: team (300 requests/minute) so walking through the API by hand
# does not meet the free plan's 10 requests a minute.
SVERM_ADMIN_PLAN ?= team
# The PostgreSQL the suite also runs against when reachable (required when CI=true).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=
# The suite runs in this many processes (pytest-xdist; each has its own test database, and a
# file's tests stay in one process). The integration tests run after, in one process: they
# start servers, workers and Redis restarts whose timing a second process would disturb.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
# pytest's "no tests collected" (5) is not a failure here: PYTEST_ARGS may select tests of
# one kind only, and the other pass then has none.
PYTEST_OK := || [ $$? -eq 5 ]

.PHONY: install run test test-typescript test-sqlite test-postgres lint bench clean

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# The Python SDK and `sverm` CLI (clients/python), which the suite tests against a server.
	$(PY) -m pip install --quiet -e "./clients/python[cli]"
	@touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap --email "$(SVERM_ADMIN_EMAIL)" --plan "$(SVERM_ADMIN_PLAN)" $(if $(SVERM_ADMIN_PASSWORD),--password="$(SVERM_ADMIN_PASSWORD)")
	$(PY) -m sverm.server -b $(HOST) -p $(PORT) sverm.asgi:application

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) manage.py makemigrations --check --dry-run

test: lint test-typescript test-sqlite test-postgres

# The TypeScript client (clients/typescript): types generated from the OpenAPI schema and code using
# them must type-check, so a schema change that breaks generated clients fails here (the
# schema is written to build/, ignored). Without npm it is skipped, unless CI=true.
test-typescript: install
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p build && \
		env -u DATABASE_URL -u REDIS_URL $(PY) manage.py spectacular --format openapi-json \
			--file build/openapi.json && \
		cd clients/typescript && npm ci --no-audit --no-fund && npm run check; \
	elif [ "$$CI" = "true" ]; then \
		echo "npm is not installed and CI=true: failing the TypeScript client check." >&2; exit 1; \
	else \
		echo "npm is not installed: skipped the TypeScript client check."; \
	fi

# The embedded default: SQLite, in-memory channel layer, nothing else installed.
test-sqlite: install
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -m "not integration" $(XDIST) $(PYTEST_ARGS) \
		$(PYTEST_OK)

# The same suite on PostgreSQL, plus the integration tests against Redis and a Celery worker.
test-postgres: install
	@if $(PY) -m tests.probe postgres "$(TEST_POSTGRES_URL)"; then \
		export DATABASE_URL="$(TEST_POSTGRES_URL)" SVERM_TEST_REDIS_URL="$(TEST_REDIS_URL)"; \
		{ $(PY) -m pytest -m "not integration" $(XDIST) $(PYTEST_ARGS) $(PYTEST_OK); } && \
		{ $(PY) -m pytest -m integration $(PYTEST_ARGS) $(PYTEST_OK); }; \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL at $(TEST_POSTGRES_URL) is unreachable and CI=true: failing." >&2; exit 1; \
	else \
		echo "PostgreSQL at $(TEST_POSTGRES_URL) is unreachable: ran on SQLite only."; \
	fi

# Benchmarks (bench/README.md) on PostgreSQL, Redis, Daphne/Uvicorn and a Celery worker on this
# machine: the database BENCH_POSTGRES_URL names is dropped and re-created, BENCH_REDIS_URL's
# database is flushed. QUICK=1: small sizes, under 3 minutes (what CI runs; it only reports).
BENCH_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/5
QUICK ?=

bench: install
	$(PY) -m bench $(if $(QUICK),--quick) --database-url "$(BENCH_POSTGRES_URL)" \
		--redis-url "$(BENCH_REDIS_URL)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
