# Two commands for a newcomer:
#   make run    set up (venv, packages, database) and serve the app on :8000
#               (with the webhook worker, manage.py deliver_webhooks)
#   make test   set up everything and run every test (lint, SQLite pass,
#               then PostgreSQL + Redis pass)
# Other targets: make admin (create a login for the admin), make lint,
# make screenshots (copy the browser tests' screenshots into docs/).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The second test pass runs against these (the machine's own services).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
# Debian packages, installed when running as root: the README's demo call
# speaks with espeak-ng (make run); the browser tests also drive Debian's
# chromium (make test).
RUN_PACKAGES ?= espeak-ng
SYSTEM_PACKAGES ?= chromium $(RUN_PACKAGES)

.PHONY: run test admin lint venv run-deps system-deps test-sqlite test-services screenshots

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv run-deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py recover_recordings
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/, create a login with: make admin)"
	@# The webhook worker beside the server, stopped with it.
	@$(PY) manage.py deliver_webhooks & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT)

# A staff login: asked for at a terminal, or, for a script, taken from
# DJANGO_SUPERUSER_USERNAME, _PASSWORD and _EMAIL. No login made: exit 1.
admin: venv
	@if [ -z "$$DJANGO_SUPERUSER_USERNAME" ] && [ ! -t 0 ]; then \
	  echo "make admin: no terminal to ask for a login. Set DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_PASSWORD and DJANGO_SUPERUSER_EMAIL. No login created." >&2; exit 1; \
	fi
	@if [ -n "$$DJANGO_SUPERUSER_USERNAME" ] && [ -z "$$DJANGO_SUPERUSER_PASSWORD" ]; then \
	  echo "make admin: DJANGO_SUPERUSER_USERNAME is set, DJANGO_SUPERUSER_PASSWORD is not. No login created." >&2; exit 1; \
	fi
	$(PY) manage.py migrate --noinput
	@if [ -n "$$DJANGO_SUPERUSER_USERNAME" ]; then \
	  $(PY) manage.py createsuperuser --noinput; \
	else \
	  $(PY) manage.py createsuperuser; \
	fi

# Installs the Debian packages $(1) that are missing, as root; otherwise
# runs $(2) with $$missing set (make run warns, make test fails).
define debian-packages
	@missing=""; for pkg in $(1); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    $(2); \
	  fi; \
	fi
endef

# What make run needs for the README's "Try it" (only --say uses it).
run-deps:
	$(call debian-packages,$(RUN_PACKAGES),echo "Missing Debian packages:$$missing: simulate_call --say needs them (sudo apt-get install$$missing). Serving anyway.")

system-deps:
	$(call debian-packages,$(SYSTEM_PACKAGES),echo "Missing Debian packages:$$missing (run as root, or: sudo apt-get install$$missing)"; exit 1)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: venv system-deps lint test-sqlite test-services

test-sqlite: venv
	@echo "=== Test pass 1: SQLite, in-memory channel layer ==="
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest

test-services: venv
	@if $(PY) -c "import socket; [socket.create_connection(a, timeout=2).close() for a in (('127.0.0.1', 5432), ('127.0.0.1', 6379))]" 2>/dev/null; then \
	  echo "=== Test pass 2: PostgreSQL ($(TEST_DATABASE_URL)), Redis ($(TEST_REDIS_URL)) ==="; \
	  DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest; \
	elif [ "$$CI" = "true" ]; then \
	  echo "!!! PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is unreachable: under CI this pass must run. FAILING."; exit 1; \
	else \
	  echo ""; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo "!!! SKIPPED test pass 2: PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) !!!"; \
	  echo "!!! is unreachable. Start them and run 'make test' again.                     !!!"; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	fi

screenshots:
	@test -f test-artifacts/call-list.png || { echo "Run make test first: the browser tests take the screenshots."; exit 1; }
	cd test-artifacts && cp call-list.png call-list-dark.png call-list-search.png \
	   call-list-phone.png call-list-phone-dark.png \
	   call-detail.png call-detail-dark.png call-detail-1280.png \
	   call-detail-phone.png call-detail-phone-dark.png \
	   admin-recordings-1280.png admin-recordings-390.png admin-recordings-dark.png \
	   admin-calls-1280.png api-docs.png ../docs/
	@# Taken by the two-worker test, in the PostgreSQL + Redis pass only.
	-cp test-artifacts/call-list-live.png test-artifacts/call-live-paused.png docs/
