# The two commands of the README. Both set up their own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck security audit-deps sbom fuzz bench clean

# setuptools is upgraded too: Python 3.11's venv seeds setuptools 65.5.0, which has published
# advisories (CVE-2024-6345, CVE-2025-47273) that make audit-deps must not have to carry.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bastion init
	$(BIN)/bastion serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench security
	$(BIN)/ruff format --check src tests bench security

typecheck: $(STAMP)
	$(BIN)/mypy

# Static security analysis of our own code (bandit; reviewed skips in pyproject [tool.bandit]).
security: $(STAMP)
	$(BIN)/bandit -c pyproject.toml -r src -q

# Known vulnerabilities in the installed dependency set (pip-audit, P26). Needs PyPI; reviewed
# exceptions in security/pip-audit-ignore.txt (docs/testing.md).
audit-deps: $(STAMP)
	$(BIN)/python security/audit_deps.py

# PYTEST_WORKERS=0 runs the suite in one process (for debugging with -s or pdb).
PYTEST_WORKERS ?= 2
test: lint typecheck security audit-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# CycloneDX SBOM of what `pip install .` brings (the runtime set, not the dev tools), written
# to build/sbom.json. Not part of `make test`: it builds a second virtual environment.
SBOM_VENV := build/sbom-venv
sbom: $(STAMP)
	rm -rf $(SBOM_VENV)
	$(PYTHON) -m venv $(SBOM_VENV)
	$(SBOM_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(SBOM_VENV)/bin/python -m pip install --quiet .
	$(BIN)/cyclonedx-py environment $(SBOM_VENV)/bin/python --pyproject pyproject.toml \
		--of JSON -o build/sbom.json --validate
	@echo "SBOM written to build/sbom.json"

# The long API fuzz run (the bounded one is part of `make test`). A random seed unless given;
# it is printed, so a failure replays with `make fuzz FUZZ_SEED=<seed>`.
FUZZ_EXAMPLES ?= 150
FUZZ_SEED ?= $(shell $(PYTHON) -c 'import secrets; print(secrets.randbelow(2**32))')
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/pytest tests/fuzz -s -p no:cacheprovider --timeout=0

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
