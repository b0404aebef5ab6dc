# Stageboard: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Development defaults for `make run`; set the variables yourself to override.
RUN_ENV := DEBUG=$${DEBUG:-true}

.PHONY: run test lint format clean

$(BIN)/activate: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(BIN)/activate

# The web server, a worker and one agent per demo environment, through honcho and the Procfile.
run: $(BIN)/activate
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py load_demo
	$(RUN_ENV) $(BIN)/python manage.py demo_agents
	$(RUN_ENV) $(BIN)/python manage.py ensure_admin
	$(RUN_ENV) PYTHONUNBUFFERED=1 $(BIN)/honcho start

test: $(BIN)/activate
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/activate
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
