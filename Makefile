# The whole set-up is `make run` and `make test`; everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 8080
SIM_PORT ?= 8081

.PHONY: run test lint typecheck unit simulator check clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

## make run: the function on $(HOST):$(PORT) against the FormCall simulator on $(HOST):$(SIM_PORT)
run: $(STAMP)
	@set -a; . ./.env.example; set +a; \
	$(BIN)/python -m formcall_webhook.simulator --host $(HOST) --port $(SIM_PORT) & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	printf '\nPlace a simulated call:\n\n  curl -s -X POST http://$(HOST):$(PORT)/ -H "Content-Type: application/json" \\\n    -d '"'"'{"telefono": "+56 9 6123 4567", "nombre": "Ana", "email": "ana@example.cl"}'"'"'\n\nCalls the simulator received: curl -s http://$(HOST):$(SIM_PORT)/_sim/calls\n\n'; \
	$(BIN)/functions-framework --target formcall_webhook --source main.py --host $(HOST) --port $(PORT)

## make test: every check and test
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term

## make check: validate the config file (FORMCALL_CONFIG or formcall.toml) as a deploy would
check: $(STAMP)
	$(BIN)/python -m formcall_webhook check $(CONFIG)

simulator: $(STAMP)
	$(BIN)/python -m formcall_webhook.simulator --host $(HOST) --port $(SIM_PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
