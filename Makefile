# `make run` starts the portal for a person to use; `make test` runs the whole suite on
# real PostgreSQL and Redis, then the date rerun (`make test-dates` alone). All create or refresh
# .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov (static analysis of the Terraform modules, tests/provisioning/test_checkov.py) lives in
# its own virtualenv: it pins packaging<24, which pytest 9 in .venv cannot use.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_REQUIREMENT := checkov==3.3.30
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := portal.settings

.PHONY: run test test-dates lint format venv chromium services-stop clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CHECKOV_STAMP): Makefile
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet '$(CHECKOV_REQUIREMENT)'
	touch $(CHECKOV_STAMP)

venv: $(STAMP) $(CHECKOV_STAMP)

# make run runs with DEBUG off, as production does, over plain HTTP on 127.0.0.1: portal/env.py
# adds a SECRET_KEY made once into var/secret_key (mode 0600), the local ALLOWED_HOSTS, the
# HTTPS-only settings turned off and PORTAL_BASE_URL on $(PORT); what the environment already
# sets wins. runportal supervises the processes (portal/management/commands/runportal.py).
run: $(STAMP)
	@set -e; mkdir -p "$${PORTAL_VAR_DIR:-var}"; \
		local_env="$$($(BIN)/python -m portal.env local-run $(PORT))"; eval "$$local_env"; \
		$(BIN)/python manage.py migrate --noinput; \
		$(BIN)/python manage.py seed_demo; \
		PORT=$(PORT) exec $(BIN)/python manage.py runportal --port $(PORT)

# ruff, then mypy with django-stubs over the apps ([tool.mypy] in pyproject.toml); make test
# runs it first. The plugin loads the settings, which DEBUG lets load without a SECRET_KEY.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_DEBUG=true $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

chromium:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Debian's chromium for the browser tests"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else \
			echo "NOTE: chromium is not installed; the browser tests will fail until you install it (apt-get install chromium)"; \
		fi; \
	fi

# The date rerun (tests/clock.py): the tests marked `clock` again, with the clock travelled to a
# Saturday, Thanksgiving, the night summer time ends and a second before the new year.
CLOCK_DATES ?= sat,holiday,dst,nye

# The whole suite and, beside it (a database and a Redis database of its own; its output is
# printed when both are done), the date rerun followed by the `lane2` tests (long ones moved
# there so that the two processes take about as long). Either failing fails the target.
test: $(STAMP) $(CHECKOV_STAMP) chromium lint
	@set -e; eval "$$($(BIN)/python -m portal.devservices test-env)"; \
		mkdir -p var; \
		echo "Testing against $$DATABASE_URL and $$REDIS_URL"; \
		echo "Date rerun ($(CLOCK_DATES)) beside it, against $$DATES_DATABASE_URL and $$DATES_REDIS_URL"; \
		( export DATABASE_URL=$$DATES_DATABASE_URL REDIS_URL=$$DATES_REDIS_URL; lane=0; \
			$(BIN)/python -m pytest -p no:cacheprovider --clock-dates=$(CLOCK_DATES) $(PYTEST_ARGS) \
			> var/test-dates.log 2>&1 || lane=$$?; \
			$(BIN)/python -m pytest -p no:cacheprovider -m lane2 $(PYTEST_ARGS) \
			>> var/test-dates.log 2>&1 || { code=$$?; [ $$code = 5 ] || lane=$$code; }; \
			echo $$lane > var/test-dates.status ) & \
		status=0; \
		$(BIN)/python -m pytest -m "not lane2" $(PYTEST_ARGS) || status=$$?; \
		wait; \
		echo "== Date rerun: the clock tests at $(CLOCK_DATES), then the lane2 tests"; \
		cat var/test-dates.log; \
		dates=$$(cat var/test-dates.status); \
		[ "$$dates" = 0 ] || status=$$dates; \
		exit $$status

test-dates: $(STAMP)
	@set -e; eval "$$($(BIN)/python -m portal.devservices test-env)"; \
		echo "Date rerun against $$DATABASE_URL and $$REDIS_URL: the clock tests at $(CLOCK_DATES)"; \
		$(BIN)/python -m pytest --clock-dates=$(CLOCK_DATES) $(PYTEST_ARGS)

services-stop:
	$(BIN)/python -m portal.devservices stop

bench: $(STAMP)
	@set -e; eval "$$($(BIN)/python -m portal.devservices test-env)"; failed=""; \
		for script in $(filter-out bench/common.py,$(wildcard bench/*.py)); do \
			echo "== $$script"; $(BIN)/python $$script || failed="$$failed $$script"; done; \
		if [ -n "$$failed" ]; then echo "goals missed:$$failed"; exit 1; fi

clean: services-stop
	rm -rf var $(VENV) $(CHECKOV_VENV)
