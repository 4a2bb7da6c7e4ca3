# Everything runs from virtualenvs built from the pinned requirements; nothing is installed by hand.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV := .venv
TOOLS := .venv-tools
CHECKOV := .venv-checkov
# pip's notes about this machine's extra local indexes are noise, not errors.
export SAM_CLI_TELEMETRY := 0
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup tools test unit integration lint template checkov demo bench lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/dev.txt $(QUIET_PIP)
	$(VENV)/bin/pip install -q --no-deps -e . $(QUIET_PIP)
	touch $@

tools: $(TOOLS)/.installed

$(TOOLS)/.installed: requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q -r requirements/tools.txt $(QUIET_PIP)
	touch $@

$(CHECKOV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install -q -r requirements/checkov.txt $(QUIET_PIP)
	touch $@

# Security checks of the template; every skip is justified inline (Metadata: checkov: skip).
checkov: $(CHECKOV)/.installed
	$(CHECKOV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The template must validate, lint and build (no Docker) at every commit.
template: setup tools
	$(TOOLS)/bin/sam validate --lint
	$(TOOLS)/bin/sam build --cached --parallel
	$(VENV)/bin/python scripts/check_bundle_sizes.py

test: lint template checkov
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

unit: setup
	$(VENV)/bin/pytest -q tests/unit

integration: setup
	$(VENV)/bin/pytest -q -m integration

demo: setup
	$(VENV)/bin/pcam demo --drop demo-drop --out pcam-output

bench: setup
	$(VENV)/bin/python bench/bench_ingest.py
	$(VENV)/bin/python bench/bench_local_model.py
	$(VENV)/bin/python bench/bench_scoring.py

# Re-resolve the pins from the *.in files (needs the package registry).
lock:
	rm -rf /tmp/pcam-lock && $(PYTHON) -m venv /tmp/pcam-lock
	/tmp/pcam-lock/bin/pip install -q -r requirements/dev.in $(QUIET_PIP)
	( echo "# Every package of the development virtualenv (.venv), pinned. Regenerate from dev.in with 'make lock'."; \
	  /tmp/pcam-lock/bin/pip freeze ) > requirements/dev.txt

clean:
	rm -rf $(VENV) $(TOOLS) $(CHECKOV) .aws-sam demo-drop pcam-output .pytest_cache
