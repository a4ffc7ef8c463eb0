# make run   — install, check the broker, create schemas and the first admin, start everything
# make test  — install and run the whole suite (needs RabbitMQ and PostgreSQL, see README)
#             = make test-unit + make test-service + make test-e2e
# make bench — start a platform and measure the gateway under concurrent load, then the
#              traffic sweep (200 containers) and traffic queries (10 M samples, PostgreSQL)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

BERTH_ENV ?= development
export BERTH_ENV

.PHONY: install run test test-unit test-service test-e2e chaos bench bench-gateway bench-traffic \
        clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m berth.manage check-broker
	$(PY) -m berth.manage init
	exec $(VENV)/bin/honcho start -f Procfile

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# make test runs the three tiers below in one go; each alone:
test-unit: install  # the fast tier: needs nothing running (broker, DB server, engine), < 1 min
	$(PY) -m pytest -m unit -q $(PYTEST_ARGS)

test-service: install  # services in-process on RabbitMQ, PostgreSQL and Docker (no platform)
	$(PY) -m pytest -m "not unit and not e2e and not chaos and not deploy" $(PYTEST_ARGS)

test-e2e: install  # the platform as real processes: end-to-end, chaos and deploy tests
	$(PY) -m pytest -m "e2e or chaos or deploy" $(PYTEST_ARGS)

chaos: install  # only the chaos tests (make test runs them too)
	$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

bench: bench-gateway bench-traffic

bench-gateway: install
	$(PY) -m benchmarks.gateway $(BENCH_ARGS)

bench-traffic: install
	$(PY) -m benchmarks.traffic $(TRAFFIC_BENCH_ARGS)

clean:
	rm -rf var
