# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint install system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use as real peers (dcmtk's storescu); installed by the project, not by hand.
system-deps:
	.ci/system-deps

run: install
	$(BIN)/dacs serve

test: install system-deps
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check fhir_server mappings terminology integrations tests benchmarks
	$(BIN)/mypy fhir_server mappings terminology integrations

clean:
	rm -rf $(VENV) .pytest_cache
