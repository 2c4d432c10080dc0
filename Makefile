# Strataflow: `make serve` runs the server, `make test` runs the suite.
# Both install first (idempotent): a virtualenv in .venv with pinned dependencies.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install serve test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, pinned: a bare `torch` requirement would pull a CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

serve: install
	$(BIN)/strataflow serve

test: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: install
	$(BIN)/python -m bench

# The checks CI runs before the tests (.ci/run): lint rules, formatting, strict types.
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

clean:
	rm -rf $(VENV) .pytest_cache
