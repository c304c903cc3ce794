# Two commands on a fresh machine: `make run` (the whole product with demo data) and `make test`.
# Both create .venv, install the project and use embedded PostgreSQL unless DATABASE_URL is set.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The browser tests (tests/browser) drive Debian's Chromium through Playwright; `playwright install` is never used.
CHROMIUM ?= /usr/bin/chromium

.PHONY: install run test lint bench clean chromium xmlsec1 oidc-op

$(STAMP): pyproject.toml agent_gateway/agent/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev]"
	$(PY) -m pip install --quiet -e agent_gateway/agent
	# The code runs from this tree: put platform/ (the controlplane package) and the root on sys.path.
	printf '%s\n%s\n' "$(CURDIR)/platform" "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/msp-itsm.pth"
	$(PY) -m pip check
	# lxml and xmlsec must link the same libxml2, else python3-saml fails at import (PITFALLS.md).
	$(PY) -c "import lxml.etree, xmlsec, onelogin.saml2.auth"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m controlplane.devstack run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: lint chromium xmlsec1 oidc-op
	$(PY) -m controlplane.devstack test

# Install Debian's Chromium when it is missing (as root, else through passwordless sudo; else say how).
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "The browser tests need Debian's Chromium at $(CHROMIUM). Install it as root:" \
	    "apt-get update && apt-get install -y chromium" >&2; exit 1; fi; \
	  echo "Installing Debian's Chromium for the browser tests (apt-get install chromium)..."; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium && \
	  test -x "$(CHROMIUM)" || { echo "apt-get installed chromium but $(CHROMIUM) is missing" >&2; exit 1; }; \
	fi

# pysaml2, the SSO tests' identity provider, signs with Debian's xmlsec1 binary: install it when missing
# (as root, else through passwordless sudo; else say how), like the chromium target.
XMLSEC1 ?= /usr/bin/xmlsec1
xmlsec1:
	@if [ ! -x "$(XMLSEC1)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "The SSO tests need Debian's xmlsec1 at $(XMLSEC1). Install it as root:" \
	    "apt-get update && apt-get install -y xmlsec1" >&2; exit 1; fi; \
	  echo "Installing Debian's xmlsec1 for the SSO tests (apt-get install xmlsec1)..."; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q xmlsec1 && \
	  test -x "$(XMLSEC1)" || { echo "apt-get installed xmlsec1 but $(XMLSEC1) is missing" >&2; exit 1; }; \
	fi

# The OIDC tests' OpenID provider: panva's oidc-provider (npm, pinned by package-lock.json) run by the
# machine's Node.js. `npm ci` from the npm registry when node_modules is missing.
OIDC_OP := sso/tests/oidc_idp
oidc-op:
	@if [ ! -d "$(OIDC_OP)/node_modules/oidc-provider" ]; then \
	  command -v npm >/dev/null 2>&1 || { echo "The OIDC tests need Node.js and npm (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }; \
	  echo "Installing the OIDC tests' OpenID provider (npm ci in $(OIDC_OP))..."; \
	  cd "$(OIDC_OP)" && npm ci --no-audit --no-fund --loglevel=error; \
	fi

bench: $(STAMP)
	$(PY) -m controlplane.devstack bench

clean:
	-$(PY) -m controlplane.devstack stop
	rm -rf .data
