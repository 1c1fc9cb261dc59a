# TradingMonitor: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app

VENDOR := app/static/vendor
VENDOR_FILES := \
	node_modules/@picocss/pico/css/pico.min.css \
	node_modules/htmx.org/dist/htmx.min.js \
	node_modules/uplot/dist/uPlot.iife.min.js \
	node_modules/uplot/dist/uPlot.min.css

.PHONY: run test setup install assets migrate lint format bench screenshots clean

run: migrate ## set up, migrate, seed on first run, serve with the alert worker (PORT=5000)
	@$(BIN)/flask seed first-run
	@echo
	@echo "TradingMonitor: http://$(HOST):$(PORT)/ (another port: make run PORT=8080)"
	@echo "Log in as 'admin' with the password printed when the database was first seeded."
	@echo "Lost it? $(BIN)/flask users set-password admin"
	TRADINGMONITOR_PUBLIC_URL=http://$(HOST):$(PORT) $(BIN)/flask serve --host $(HOST) --port $(PORT)

test: setup ## set up, lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: install assets instance/config.py

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# npm ci also installs the devDependencies: axe-core, which the accessibility test
# reads from node_modules/ (a test tool: it is not copied to $(VENDOR)).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

assets: node_modules/.installed
	mkdir -p $(VENDOR)
	cp $(VENDOR_FILES) $(VENDOR)/

instance/config.py:
	mkdir -p instance
	$(PYTHON) -c 'import secrets; print("SECRET_KEY = " + repr(secrets.token_hex(32)))' > $@
	@echo "Wrote $@ with a new random SECRET_KEY."

migrate: setup
	$(BIN)/flask db upgrade

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python bench/pages.py

# The README's pictures: the desk at 1366x768, a phone at 390x844.
SCREENSHOTS := desk-overview-light desk-overview-dark desk-history-light desk-history-dark \
	phone-overview-light phone-alerts-dark

screenshots: setup ## browser screenshots (desk and phone, light and dark); the README's go to docs/screenshots/
	REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q tests/browser/test_screenshots.py
	mkdir -p docs/screenshots
	cp $(SCREENSHOTS:%=test-artifacts/browser/screenshots/%.png) docs/screenshots/

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .ruff_cache test-artifacts
