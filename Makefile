# Two commands: `make demo` and `make test`. Both build .venv from the committed lock file once.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BORDIN_HOME ?= $(CURDIR)/var
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
export DBT_SEND_ANONYMOUS_USAGE_STATS := False

# Tests run on every core (pytest-xdist); the heaviest slow tests are scheduled first, and an
# idle worker steals queued ones. `make test-fast` is the inner loop: not marked slow.
PYTEST := $(BIN)/python -m pytest -q -n auto --dist worksteal --durations=10

.PHONY: venv demo test test-fast lint format bench clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bordin demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST)

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var dbt_project/target dbt_project/logs
