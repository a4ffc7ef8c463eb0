# make run   — install, check the broker, create schemas and the first admin, start everything
# make test  — install and run the whole suite (needs RabbitMQ and PostgreSQL, see README)
#             = make test-unit + make test-service + make test-e2e, as two shards at once
# make bench — start a platform and measure the gateway under concurrent load, then container
#              creates through the gateway (customer and admin), then the traffic sweep
#              (200 confined containers) and traffic queries (10 M samples, PostgreSQL), then
#              the console's chart draw time in Chromium (benchmarks/chart.py)
# make web     — build the web console into web/dist (npm ci first when node_modules is missing
#              or package-lock.json changed); the gateway serves it at /
# make web-test — the console's component tests (Vitest)
# make web-api — save the gateway's OpenAPI document to web/openapi.json and regenerate the
#              console's API client from it (web/src/api/generated, committed)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

BERTH_ENV ?= development
export BERTH_ENV

# node-check is phony too
.PHONY: node-check install run test test-unit test-service test-e2e chaos bench bench-gateway \
        bench-containers bench-traffic bench-live bench-chart bench-profile bench-rpc-floor clean web web-test web-api web-if-node

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# --- the web console (web/: React + Vite; README "Web console") ------------------------------
NODE_HINT := Node.js 18 or newer with npm is needed to build the web console (Debian: \
  apt-get install nodejs npm; or https://nodejs.org)
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts \
               web/tsconfig.json web/postcss.config.cjs web/package.json web/scripts/budget.mjs
WEB_MODULES := web/node_modules/.package-lock.json

node-check:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
	  && node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' \
	  || { echo "$(NODE_HINT)" >&2; exit 1; }

$(WEB_MODULES): web/package-lock.json | node-check
	cd web && npm ci --no-audit --no-fund
	touch $@

web/dist/index.html: $(WEB_MODULES) $(WEB_SOURCES) | node-check
	cd web && npm run build
	touch $@

web: web/dist/index.html

web-test: $(WEB_MODULES)  # the console's component tests (Vitest, jsdom): web/src/**/*.test.tsx
	cd web && npm test

web-api: install $(WEB_MODULES)
	$(PY) -m gateway.openapi_dump web/openapi.json
	cd web && npx --no-install orval --config orval.config.ts

# make run builds the console when it is missing or stale; without Node it says how to get
# it and serves the API alone
web-if-node:
	@if $(MAKE) --no-print-directory -s node-check 2>/dev/null; then \
	  $(MAKE) --no-print-directory web; \
	else echo "[berth] the web console cannot be built or updated here: $(NODE_HINT). The API is served anyway (and web/dist, if it was built before)." >&2; fi

run: install web-if-node
	$(PY) -m berth.manage check-broker
	$(PY) -m berth.manage init
	exec $(VENV)/bin/honcho start -f Procfile

# the suite as two pytest processes at once (tests/shards.py): the modules on the default
# Docker engine, and the rest; PYTEST_ARGS go to both
test: install web web-test  # the browser tests (tests/e2e/test_console.py) drive the built console
	$(PY) -m tests.shards --durations=20 $(PYTEST_ARGS)

# make test runs the three tiers below in one go; each alone:
test-unit: install  # the fast tier: needs nothing running (broker, DB server, engine), < 1 min
	$(PY) -m pytest -m unit -q $(PYTEST_ARGS)

test-service: install  # services in-process on RabbitMQ, PostgreSQL and Docker (no platform)
	$(PY) -m pytest -m "not unit and not e2e and not chaos and not deploy" $(PYTEST_ARGS)

test-e2e: install web  # the platform as real processes: end-to-end, chaos and deploy tests
	$(PY) -m pytest -m "e2e or chaos or deploy" $(PYTEST_ARGS)

chaos: install  # only the chaos tests (make test runs them too)
	$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

bench: bench-gateway bench-containers bench-traffic bench-live bench-chart

bench-gateway: install
	$(PY) -m benchmarks.gateway $(BENCH_ARGS)

bench-containers: install  # needs the Docker engine too
	$(PY) -m benchmarks.containers $(CONTAINERS_BENCH_ARGS)

bench-traffic: install
	$(PY) -m benchmarks.traffic $(TRAFFIC_BENCH_ARGS)

bench-profile: install  # the authenticated read's CPU per request by process and by hop (py-spy on PATH)
	$(PY) -m benchmarks.profile_hops $(PROFILE_ARGS)

bench-rpc-floor: install  # a no-op RPC's CPU by process (caller, service, RabbitMQ), both reply paths
	$(PY) -m benchmarks.rpc_floor $(RPC_FLOOR_ARGS)

bench-chart: install web  # the console's 30-day hourly traffic chart of 50 containers: its draw time in Chromium
	$(PY) -m benchmarks.chart $(CHART_BENCH_ARGS)

bench-live: install  # what idle live streams (GET /api/stream) cost the gateway
	$(PY) -m benchmarks.live $(LIVE_BENCH_ARGS)

clean:
	rm -rf var
