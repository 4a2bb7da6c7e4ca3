# Everything runs from virtualenvs built from the pinned requirements; nothing is installed by hand.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# The Lambda runtime's Python (python3.13: openslide-bin's manylinux_2_28 wheels need Amazon Linux 2023);
# pyenv's own copy when its shim would refuse. The tools (SAM CLI, checkov, mutmut) keep the machine's python3.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13.*/bin/python3.13) python3.13)
TOOLS_PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
CHECKOV := .venv-checkov
MUTATION := .venv-mutation
# pip's notes about this machine's extra local indexes are noise, not errors.
export SAM_CLI_TELEMETRY := 0
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup tools browser test unit integration lint template checkov demo bench fuzz mutation shuffled lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/pip install -q -r requirements/dev.txt $(QUIET_PIP)
	$(VENV)/bin/pip install -q --no-deps -e . $(QUIET_PIP)
	touch $@

tools: $(TOOLS)/.installed

$(TOOLS)/.installed: requirements/tools.txt
	$(TOOLS_PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q -r requirements/tools.txt $(QUIET_PIP)
	touch $@

$(CHECKOV)/.installed: requirements/checkov.txt
	$(TOOLS_PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install -q -r requirements/checkov.txt $(QUIET_PIP)
	touch $@

# Headless Chromium renders the slide report in the tests: Debian's package, installed when missing (as root,
# or with sudo). Not pinned: Debian's security updates replace the version, and an old one disappears.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# Security checks of the template; every skip is justified inline (Metadata: checkov: skip).
checkov: $(CHECKOV)/.installed
	$(CHECKOV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy  # what it checks, and how strictly: [tool.mypy] in pyproject.toml

# The template must validate, lint and build (no Docker) at every commit.
template: setup tools
	$(TOOLS)/bin/sam validate --lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(TOOLS)/bin/sam build --cached --parallel  # finds python3.13 in .venv
	$(VENV)/bin/python scripts/check_bundle_sizes.py

# Every run is in a new random order (pytest-randomly); SEED=… repeats one.
test: lint template checkov browser
	seed=$${SEED:-$$RANDOM}; echo "test order: --randomly-seed=$$seed (make test SEED=$$seed repeats it)"; \
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --randomly-seed=$$seed

# The whole suite RUNS times in a row, each in another random order; fails if a run leaves a process behind.
RUNS ?= 5
shuffled: setup
	for run in $$(seq $(RUNS)); do \
	  seed=$$RANDOM; echo "run $$run of $(RUNS): --randomly-seed=$$seed"; \
	  $(VENV)/bin/pytest -q -n 2 --dist loadfile --randomly-seed=$$seed || exit 1; \
	  left=$$(pgrep -f "$(CURDIR)/$(VENV)/bin/pytho[n]" || true); \
	  if [ -n "$$left" ]; then echo "run $$run left processes behind:"; ps -o pid,args -p $$left; exit 1; fi; \
	done

# Everything but the local stack: the domain on its fakes, the adapters and contracts on in-process moto.
unit: setup
	$(VENV)/bin/pytest -q -n 2 tests/unit tests/adapters tests/emulator

integration: setup
	$(VENV)/bin/pytest -q -m integration

demo: setup
	$(VENV)/bin/pcam demo --drop demo-drop --out pcam-output

bench: setup
	$(VENV)/bin/python bench/bench_ingest.py
	$(VENV)/bin/python bench/bench_local_model.py
	$(VENV)/bin/python bench/bench_slide_verdicts.py
	$(VENV)/bin/python bench/bench_scoring.py
	$(VENV)/bin/python bench/bench_scoring_queue.py
	$(VENV)/bin/python bench/bench_pcam_scale.py
	$(VENV)/bin/python bench/bench_wsi_readers.py
	$(VENV)/bin/python bench/bench_slide_formats.py
	$(VENV)/bin/python bench/bench_tile_checks.py
	$(VENV)/bin/python bench/figures_page.py

# Fuzzing the ingestion with N mutated and hostile files (a seeded 200 run is part of make test).
N ?= 2000
FUZZ_SEED ?= 1
fuzz: setup
	$(VENV)/bin/python -m tests.fuzz --cases $(N) --seed $(FUZZ_SEED) --report fuzz-report.json

$(MUTATION)/.installed: requirements/mutation.txt
	$(TOOLS_PYTHON) -m venv $(MUTATION)
	$(MUTATION)/bin/pip install -q -r requirements/mutation.txt $(QUIET_PIP)
	touch $@

# Mutation testing of the pure domain modules with their tests, named by file (found in tests/unit, adapters or
# emulator; not part of `make test`: about 90 min, docs/testing.md).
# mutmut edits files in place, so it works on a copy of the tree in build/mutation; the copy's modules are
# put first on the path. MODULES=keys runs one module; the score per module is in docs/testing.md.
MUTATION_PLAN := core/keys:test_keys.py \
	core/dropped_files:test_keys.py,test_name_properties.py,test_training_settings.py,test_notifications.py \
	ingestion/hdf5_input:test_hdf5_input.py,test_damaged_files.py ingestion/hdf5_layout:test_hdf5_input.py,test_damaged_files.py \
	ingestion/manifests:test_conversion_core.py,test_scoring_queue.py models/evaluation_report:test_evaluation.py ../pcam_evaluation_job/evaluate_model:test_evaluation.py \
	models/promotion:test_promotion.py,test_sagemaker_flow.py scoring/slide_results:test_slide_results.py \
	models/sagemaker_jobs:test_training_config.py,test_cloud_fidelity.py \
	state/ingestion:test_state_table_contract.py,test_handlers.py,test_ingest_races.py,test_damaged_files.py \
	state/model_side:test_state_table_contract.py,test_sagemaker_flow.py,test_promotion.py,test_scoring_queue.py \
	scoring/batches:test_scoring_queue.py state/conditions:test_state_table_contract.py,test_state_conditions_contract.py \
	wsi/tiling:test_wsi_tiling.py wsi/tissue:test_wsi_tiling.py wsi/results:test_wsi_results.py \
	wsi/reader:test_wsi_reader.py,test_real_writers.py,test_hostile_slides.py \
	wsi/structure:test_wsi_reader.py,test_hostile_slides.py,test_real_writers.py \
	wsi/tile_decoding:test_hostile_slides.py,test_wsi_reader.py,test_real_writers.py \
	wsi/resolution:test_wsi_reader.py,test_hostile_slides.py \
	scoring/lesions:test_lesions.py scoring/lesion_extent:test_lesions.py scoring/lesion_evidence:test_lesion_evidence.py
MODULES ?= $(foreach item,$(MUTATION_PLAN),$(firstword $(subst :, ,$(item))))
mutation: setup $(MUTATION)/.installed
	rm -rf build/mutation && mkdir -p build/mutation
	git ls-files -z | xargs -0 cp --parents -t build/mutation
	cd build/mutation && for item in $(MUTATION_PLAN); do \
	  module=$${item%%:*}; tests=$${item#*:}; \
	  case " $(MODULES) " in *" $$module "*) ;; *) continue ;; esac; \
	  runner="sh scripts/mutation_tests.sh ../../$(VENV)/bin/python"; \
	  for test in $${tests//,/ }; do for folder in unit adapters emulator; do \
	    if [ -f tests/$$folder/$$test ]; then runner="$$runner tests/$$folder/$$test"; fi; done; done; \
	  ../../$(MUTATION)/bin/mutmut run --no-progress --paths-to-mutate shared/pcam_pipeline/$$module.py \
	    --tests-dir tests --runner "$$runner" || true; \
	done
	$(VENV)/bin/python scripts/mutation_score.py build/mutation/.mutmut-cache

# Re-resolve the pins from the *.in files (needs the package registry).
lock:
	rm -rf /tmp/pcam-lock && $(PYTHON) -m venv /tmp/pcam-lock
	/tmp/pcam-lock/bin/pip install -q -r requirements/dev.in $(QUIET_PIP)
	( echo "# Every package of the development virtualenv (.venv), pinned. Regenerate from dev.in with 'make lock'."; \
	  /tmp/pcam-lock/bin/pip freeze ) > requirements/dev.txt

clean:
	rm -rf $(VENV) $(TOOLS) $(CHECKOV) $(MUTATION) .aws-sam demo-drop pcam-output .pytest_cache build/mutation fuzz-report.json
