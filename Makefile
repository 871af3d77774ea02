# The README's two commands are `make demo` and `make test`; both do all the
# set-up a fresh Debian/Ubuntu machine needs (system packages, two virtual
# environments pinned by requirements/*.lock).
PYTHON ?= python3.11
VENV := .venv
FLINK_VENV := .venv-flink
CHECKOV_VENV := .venv-checkov
AUDIT_VENV := .venv-audit
PIP_FLAGS := --disable-pip-version-check -q

.PHONY: setup system-deps demo test test-fast lint terraform-check audit bench clean

setup: system-deps $(VENV)/.installed $(FLINK_VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh

# Main environment: Feast, MLflow, implicit, LightGBM, ONNX Runtime, FastAPI, …
$(VENV)/.installed: pyproject.toml requirements/main.lock
	@echo "setup: $(VENV) (main environment)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install $(PIP_FLAGS) -c requirements/main.lock -e ".[dev]"
	@touch $@

# Stream jobs' environment: PyFlink pins protobuf 5 / redis 5, Feast needs protobuf 7.
$(FLINK_VENV)/.installed: requirements/flink.lock pyproject.toml
	@echo "setup: $(FLINK_VENV) (PyFlink environment)"
	@test -x $(FLINK_VENV)/bin/python || $(PYTHON) -m venv $(FLINK_VENV)
	@$(FLINK_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/flink.lock
	@$(FLINK_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e .
	@bash scripts/flink-jars.sh $(FLINK_VENV)
	@touch $@

# checkov has its own environment: its pins would fight the platform's.
$(CHECKOV_VENV)/.installed: requirements/checkov.lock
	@echo "setup: $(CHECKOV_VENV) (checkov for terraform/)"
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/checkov.lock
	@touch $@

terraform-check: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -d terraform --skip-download --compact --quiet

# pip-audit, in its own environment like checkov, audits the pins of both locks.
$(AUDIT_VENV)/.installed: requirements/audit.lock
	@echo "setup: $(AUDIT_VENV) (pip-audit)"
	@test -x $(AUDIT_VENV)/bin/python || $(PYTHON) -m venv $(AUDIT_VENV)
	@$(AUDIT_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/audit.lock
	@touch $@

# Exit 1: known vulnerabilities (listed); 2: no vulnerability service reachable from here.
audit: $(AUDIT_VENV)/.installed
	$(AUDIT_VENV)/bin/python scripts/audit.py $(AUDIT_ARGS) requirements/main.lock requirements/flink.lock

demo: setup
	$(VENV)/bin/recsys demo

test: setup
	@bash scripts/ensure-services.sh
	$(VENV)/bin/ruff check .
	@$(MAKE) --no-print-directory terraform-check
	@$(MAKE) --no-print-directory audit AUDIT_ARGS=--unreachable-ok
	$(VENV)/bin/python -m pytest --cov --cov-report=term --cov-report=xml --cov-fail-under=80

test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "not integration" -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(VENV)/bin/recsys bench generator

clean:
	rm -rf $(VENV) $(FLINK_VENV) $(CHECKOV_VENV) $(AUDIT_VENV) .recsys data .coverage* coverage.xml
