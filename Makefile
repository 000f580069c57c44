# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := demo-out

.PHONY: demo test lint bench clean

$(BIN)/flagstone: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,triage]'
	touch $@

demo: $(BIN)/flagstone
	$(BIN)/python -m flagstone.demo --out $(DEMO)

# The tests run every rule on Spark too (local mode, needs Java): install the optional extra.
$(VENV)/.spark-extra: $(BIN)/flagstone
	$(BIN)/pip install --quiet -e '.[dev,triage,spark]'
	touch $@

test: $(BIN)/flagstone $(VENV)/.spark-extra
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -n 2

lint: $(BIN)/flagstone
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(BIN)/flagstone
	$(BIN)/python bench/scan.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
