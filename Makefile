# sipreg: `make demo` runs the mission locally, `make test` runs every test.
# Both start from a clean clone: the venv, pinned dependencies and generated code are made here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.12, so the venv does too (pyenv keeps one on this machine's kind).
# The first candidate that really runs wins (a pyenv shim may exist without the version behind it).
PYTHON312 ?= $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null) \
	$$(command -v python3.12); do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
	2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_OUT := layers/common/sipreg/proto
PROTOS := $(shell find protos -name '*.proto')
PROTO_STAMP := $(PROTO_OUT)/wgtwo/.generated

.PHONY: help venv aws-engine sam proto browser sip system-packages lint-tools lint-python lint-template test-tools idp test unit integration e2e lint \
	sam-rehearsal demo bench bench-engines \
	chaos permission-mutants build layer-constraints clean

help:
	@echo "make demo   run the whole mission locally (emulator, functions, AWS stand-ins)"
	@echo "make test   run every test (unit, integration, e2e)"
	@echo "make lint   ruff + mypy + template checks + the SAM deploy rehearsal (validate, build, imports)"
	@echo "make proto  generate Python code from protos/"
	@echo "make build  the layer and functions for the Lambda platform (.build/)"
	@echo "make bench  the benchmarks (ratios against a baseline of the same run), charts in bench/out/"
	@echo "make bench-engines  which local AWS engine keeps AWS's rules (bench/aws_engines.py)"
	@echo "make chaos  a storm of 10,000 events with faults everywhere; fails on any loss or divergence"
	@echo "make permission-mutants  each permission of the template removed alone must make a test fail"

$(STAMP): pyproject.toml layers/common/requirements.txt constraints.txt
	@test -n "$(PYTHON312)" || { echo "python3.12 not found (install it or set PYTHON312=...)"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

# The benchmarks' charts (matplotlib): only `make bench` and `make chaos` need them.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	touch $@

# checkov pins dependencies that clash with ours (old boto3), so it gets a venv of its own.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: tools/checkov-requirements.txt
	$(PYTHON312) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/checkov-requirements.txt
	touch $@

# The local AWS engine (ministack) pins an older botocore than ours, so it too has a venv of its own.
AWS_VENV := .venv-aws
AWS_STAMP := $(AWS_VENV)/.installed
$(AWS_STAMP): tools/aws-engine-requirements.txt
	@test -n "$(PYTHON312)" || { echo "python3.12 not found (install it or set PYTHON312=...)"; exit 1; }
	$(PYTHON312) -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/aws-engine-requirements.txt
	touch $@

aws-engine: $(AWS_STAMP)

# The AWS SAM CLI pins its own pydantic and botocore, so it gets a venv of its own too.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
$(SAM_STAMP): tools/sam-requirements.txt
	@test -n "$(PYTHON312)" || { echo "python3.12 not found (install it or set PYTHON312=...)"; exit 1; }
	$(PYTHON312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/sam-requirements.txt
	touch $@

sam: $(SAM_STAMP)

# The same script runs when pip builds a wheel (setup.py), so `pip install .` ships this code too.
$(PROTO_STAMP): $(PROTOS) $(STAMP) tools/generate_protos.py
	$(PY) tools/generate_protos.py

proto: $(PROTO_STAMP)

# Debian's chromium for the browser e2e tests (Playwright drives it; it never downloads a browser).
browser:
	@test -x /usr/bin/chromium || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Debian's Kamailio with its TLS module: the local PBX/TAS (devstack/pbx) that the emulated core's
# INVITEs and the health probes' OPTIONS reach over TLS. (Debian's sipp has no TLS transport.)
KAMAILIO_TLS := /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so
sip:
	@test -x /usr/sbin/kamailio -a -f $(KAMAILIO_TLS) || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kamailio kamailio-tls-modules; }

# The certified OpenID provider the consent tests also run against (oidc-provider from npm, exact
# versions from the committed package-lock.json; Node.js 20 or later).
IDP_DIR := devstack/certified_idp
IDP_STAMP := $(IDP_DIR)/node_modules/.installed
$(IDP_STAMP): $(IDP_DIR)/package.json $(IDP_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ (Debian: apt-get install nodejs npm)"; exit 1; }
	cd $(IDP_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

idp: $(IDP_STAMP)

# Each tool of lint and test has an environment of its own, made side by side: pip's, npm's and
# apt's downloads and installs overlap instead of following each other (on a fresh clone they are
# a third of CI's time). apt's two installs take dpkg's lock in turn, so they share one job.
LINT_TOOLS := $(PROTO_STAMP) $(CHECKOV_VENV)/.installed $(SAM_STAMP)
TEST_TOOLS := $(PROTO_STAMP) $(AWS_STAMP) $(IDP_STAMP) system-packages
lint-tools:
	@$(MAKE) --no-print-directory -j3 --output-sync=target $(LINT_TOOLS)
test-tools:
	@$(MAKE) --no-print-directory -j4 --output-sync=target $(TEST_TOOLS)
system-packages:
	@$(MAKE) --no-print-directory browser
	@$(MAKE) --no-print-directory sip

# Two parts, both always run: what tolerates a busy machine on both cores (whole files per worker,
# so module fixtures stay shared), then alone the tests with real-time margins of a few seconds:
# the e2e stack (its clock 360 times faster) and the `serial` ones.
PARALLEL_TESTS := not e2e and not serial
test: test-tools
	$(PY) -m pytest -q -n 2 --dist loadfile -m "$(PARALLEL_TESTS)"; parallel=$$?; \
	$(PY) -m pytest -q -p no:xdist -m "not ($(PARALLEL_TESTS))"; alone=$$?; \
	exit $$(( parallel || alone ))

unit: $(PROTO_STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(PROTO_STAMP) sip $(AWS_STAMP) $(IDP_STAMP)
	$(PY) -m pytest -q tests/integration

e2e: $(PROTO_STAMP) browser sip $(AWS_STAMP) $(IDP_STAMP)
	$(PY) -m pytest -q tests/e2e

# Three independent checks, side by side (each one's output kept together).
lint: lint-tools
	@$(MAKE) --no-print-directory -j3 --output-sync=target lint-python lint-template sam-rehearsal
lint-python: $(PROTO_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
lint-template: $(STAMP) $(CHECKOV_VENV)/.installed
	# I3011 (informational, off by default): every stateful resource says what a delete does to it.
	$(VENV)/bin/cfn-lint template.yaml --include-checks I3011
	# BC_SKIP_MAPPING: no attempt to fetch guideline links from the network (there is none here).
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --quiet --compact --framework cloudformation -f template.yaml

# The deploy rehearsal, offline: SAM's own validation and build (no container, no AWS account; the
# layer's pinned wheels come from PyPI), then every built function must import on Python 3.12 with
# only its built code and the built layer. `cached = true` (samconfig.toml) keeps it quick.
SAM_BUILD_DIR := .aws-sam/build
sam-rehearsal: $(PROTO_STAMP) $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint
	PATH="$(abspath $(VENV))/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --build-dir $(SAM_BUILD_DIR)
	$(PY) tools/check_built_functions.py $(PYTHON312) $(SAM_BUILD_DIR)

# The layer's own pins (layers/common/constraints.txt); run after changing a runtime pin.
layer-constraints: $(STAMP)
	$(PY) tools/layer_constraints.py

# Figures, not assertions: each one a ratio or a count against a baseline of the same run, printed
# with its goal; JSON and PNG charts in bench/out/. The cost model takes the counts of this run.
bench: $(PROTO_STAMP) $(AWS_STAMP) $(BENCH_STAMP) build
	$(PY) bench/bench_core.py
	$(PY) bench/bench_worker.py
	$(PY) bench/bench_refresher.py
	$(PY) bench/bench_e2e.py
	$(PY) bench/bench_cold_start.py
	$(PY) bench/cost.py

# Every permission of template.yaml removed alone must make a test fail (about 75 minutes; the
# report goes to docs/permission-mutants.md).
permission-mutants: $(PROTO_STAMP) browser sip $(AWS_STAMP) $(IDP_STAMP)
	$(PY) tests/permission_mutants.py

# The measurement behind the choice of local AWS engine (minutes: it also runs moto's candidates).
bench-engines: $(PROTO_STAMP) $(AWS_STAMP)
	$(PY) bench/aws_engines.py

# A bounded storm on the local stack: 10,000 events over 1,000 numbers, faults everywhere, then the
# proof that nothing was lost and every number converged (exit 1 otherwise); chart in bench/out/.
chaos: $(PROTO_STAMP) sip $(AWS_STAMP) $(BENCH_STAMP)
	$(PY) -m devstack.chaos

# The layer and every function for the Lambda platform, as `sam build` lays them out.
BUILD_DIR := .build
build: $(PROTO_STAMP)
	rm -rf $(BUILD_DIR)
	$(MAKE) -C layers/common build-CommonLayer ARTIFACTS_DIR=$(abspath $(BUILD_DIR))/CommonLayer PYTHON=$(abspath $(PY))
	for dir in functions/*/; do name=$$(basename $$dir); mkdir -p $(BUILD_DIR)/functions/$$name; \
		cp $$dir*.py $(BUILD_DIR)/functions/$$name/; done
	@du -sh $(BUILD_DIR)/CommonLayer | sed 's/^/layer: /'
	@ls $(BUILD_DIR)/functions | sed 's/^/function: /'

demo: $(PROTO_STAMP) sip $(AWS_STAMP)
	$(PY) -m devstack.demo

clean:
	rm -rf $(VENV) $(AWS_VENV) $(SAM_VENV) .aws-sam $(PROTO_OUT)/wgtwo .mypy_cache .ruff_cache .pytest_cache $(IDP_DIR)/node_modules
