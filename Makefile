# Two commands on a fresh machine: `make run` (the whole product with demo data) and `make test`.
# Both create .venv, install the project and use embedded PostgreSQL unless DATABASE_URL is set.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev]"
	# The code runs from this tree: put platform/ (the controlplane package) and the root on sys.path.
	printf '%s\n%s\n' "$(CURDIR)/platform" "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/msp-itsm.pth"
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m controlplane.devstack run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: lint
	$(PY) -m controlplane.devstack test

bench: $(STAMP)
	$(PY) -m controlplane.devstack bench

clean:
	-$(PY) -m controlplane.devstack stop
	rm -rf .data
