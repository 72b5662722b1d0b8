# SecureLogin: `make run` serves a seeded demo; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

# Development-only values for `make run`; production sets its own environment.
RUN_ENV := SECRET_KEY=$${SECRET_KEY:-make-run-development-key-not-for-production} \
	SECURE_COOKIES=$${SECURE_COOKIES:-0} \
	SECURELOGIN_EXTRA_ROOT_HOSTS=$${SECURELOGIN_EXTRA_ROOT_HOSTS:-127.0.0.1} \
	PORT=$(PORT)

.PHONY: run test lint bench venv clean chromium xmlsec1

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-dev

# One webhook worker runs in the background beside gunicorn, in the same shell. The EXIT trap
# stops it (SIGTERM: it finishes the delivery it is sending) whenever that shell ends: gunicorn
# stopped by Ctrl-C or TERM, or failing to start. The INT/TERM traps turn those signals into a
# normal exit, so the EXIT trap runs under every /bin/sh.
run: $(VENV)/.installed-run xmlsec1
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input
	$(RUN_ENV) $(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --port $(PORT)
	$(RUN_ENV) $(BIN)/python manage.py ensure_entra_client --base-url http://localhost:$(PORT)
	$(RUN_ENV) $(BIN)/python manage.py run_webhook_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(RUN_ENV) $(BIN)/gunicorn -c securelogin/gunicorn.conf.py

# The browser tests drive Debian's chromium (a test tool's own browser download cannot work here);
# install it when it is missing and we may (root with apt-get), as .ci/run does.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed; the browser tests will fail"; \
	  else echo "chromium is missing: install it (apt-get install chromium) for the browser tests"; fi; }

# SAML signatures are checked by Debian's xmlsec1 (pysaml2 runs the binary); install it when it is
# missing and we may (root with apt-get), as .ci/run does.
xmlsec1:
	@command -v xmlsec1 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian xmlsec1 for SAML single sign-on"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 >/dev/null) \
	      || echo "xmlsec1 could not be installed; SAML sign-in and its tests will fail"; \
	  else echo "xmlsec1 is missing: install it (apt-get install xmlsec1) for SAML single sign-on"; fi; }

test: $(VENV)/.installed-dev chromium xmlsec1
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	SECRET_KEY=lint $(BIN)/python manage.py makemigrations --check --dry-run

# Modest defaults; the full run of docs/benchmarks.md:
# make bench BENCH_ARGS="--recreate --users 10000 --groups 100 --memberships 20000 --clients 8"
BENCH_ARGS ?= --recreate --users 1000 --groups 10 --memberships 2000 --clients 8
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# SecureLogin against scim2-server and django-scim2 (peers pip-installed into /tmp), the floor and the
# growth check, in one run (docs/benchmarks.md, "Comparison"): 15-30 minutes at the issue's sizes.
# make compare COMPARE_ARGS="--quick" for a smoke test; add --json PATH to keep the numbers.
.PHONY: compare
COMPARE_ARGS ?=
compare: $(VENV)/.installed-dev
	$(BIN)/python bench/compare.py $(COMPARE_ARGS)

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 .pytest_cache
