# The two commands a new user needs:
#   make demo   installs everything, migrates, seeds demo data, serves, prints the URLs and logins
#   make test   installs everything and runs the whole test suite with mypy and ruff
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
# Browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM := /usr/bin/chromium
# Tests run in parallel, a test file per worker (its module fixtures stay together): most of a test's time is spent
# waiting on servers and sockets, so three workers on two cores take ~2.5x less time than one (measured).
TEST_WORKERS ?= 3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo serve test lint bench vendor lock clean

install: $(STAMP) static/vendor/.installed

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

static/vendor/.installed: package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-ws/dist/ws.min.js static/vendor/
	touch $@

vendor: static/vendor/.installed

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests"
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

demo: install
	$(BIN)/desk demo

serve: install
	$(BIN)/desk serve

lint: install
	$(BIN)/ruff check desk tests bench migrations
	$(BIN)/ruff format --check desk tests bench migrations
	$(BIN)/mypy desk tests bench

test: lint $(CHROMIUM)
	$(BIN)/pytest --durations=25 -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(BIN)/python -m bench.message_path
	$(BIN)/python -m bench.queue_page
	$(BIN)/python -m bench.fallback_path

lock:
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock --no-header
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements-dev.lock --no-header

clean:
	rm -rf $(VENV) node_modules static/vendor
