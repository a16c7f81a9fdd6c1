# The whole set-up is `make run` and `make test`; everything else is optional.
SHELL  := bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 8080
SIM_PORT ?= 8081

.PHONY: run test test-fast test-slow lint typecheck unit simulator check clean soak infra-check

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

## make run: the function on $(HOST):$(PORT) against the FormCall simulator on $(HOST):$(SIM_PORT)
## (FORMCALL_API_URL follows SIM_PORT unless you set it yourself)
run: $(STAMP)
	@[ -n "$${FORMCALL_API_URL+set}" ] || export FORMCALL_API_URL=http://$(HOST):$(SIM_PORT)/calls/manage/api; \
	while IFS='=' read -r key value; do \
	  case "$$key" in ''|'#'*) continue ;; esac; \
	  [ -n "$${!key+set}" ] || export "$$key=$$value"; \
	done < .env.example; \
	if [ -n "$$FORMCALL_CONFIG" ] || [ -f formcall.toml ]; then \
	  $(BIN)/python -m formcall_webhook check >/dev/null || { \
	    echo "make run: $${FORMCALL_CONFIG:-formcall.toml} has the errors above; fix each key named, check again with: $(BIN)/python -m formcall_webhook check" >&2; \
	    exit 1; }; \
	fi; \
	$(BIN)/python -m formcall_webhook.simulator --host $(HOST) --port $(SIM_PORT) & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	printf '\nPlace a simulated call:\n\n  curl -s -X POST http://$(HOST):$(PORT)/ -H "Content-Type: application/json" \\\n    -d '"'"'{"telefono": "+56 9 6123 4567", "nombre": "Ana", "email": "ana@example.cl"}'"'"'\n\nCalls the simulator received: curl -s http://$(HOST):$(SIM_PORT)/_sim/calls\n\n'; \
	( for _ in $$(seq 150); do (exec 3<>/dev/tcp/$(HOST)/$(PORT)) 2>/dev/null && { echo "listening on http://$(HOST):$(PORT) (leads kept in $$FORMCALL_STORE_URL)"; exit; }; sleep 0.2; done ) & \
	$(BIN)/functions-framework --target formcall_webhook --source main.py --host $(HOST) --port $(PORT)

## make test: every check and test (at most 5 minutes on 2 idle cores)
test: lint typecheck unit

# pytest's exit 5 is "no test collected": for the whole suite that is a failure, never a silent pass;
# for a marker selection (test-fast, test-slow, or PYTEST_ARGS="-k ...") it only says the selection is empty.
# PYTEST_WORKERS: pytest-xdist processes, each given whole test files (module fixtures start once, a file's
# tests keep their order) and its own Redis and Firestore emulator; the suite waits on processes as much as
# it computes, so two keep two cores busy. PYTEST_WORKERS=0 runs in this one process.
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
define pytest_run
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests ($(2))" >&2; [ "$(2)" != all ] && rc=0 || rc=1; fi; \
	exit $$rc
endef

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if command -v terraform >/dev/null 2>&1; then \
	  echo "terraform fmt -check -recursive infra/terraform"; terraform fmt -check -recursive infra/terraform; \
	elif [ -n "$${CI:-}" ]; then echo "terraform is not installed, and CI must check infra/terraform's format" >&2; exit 1; \
	else echo "skipped: terraform fmt (terraform is not installed)"; fi

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	@$(call pytest_run,--cov --cov-report=term,all)

## make test-fast: the in-process tests (not marked slow), for the edit loop: under a minute, no coverage
test-fast: $(STAMP)
	@$(call pytest_run,-m "not slow" -p no:cacheprovider,not slow)

## make test-slow: only the process, browser, soak and fuzz suites (marked slow)
test-slow: $(STAMP)
	@$(call pytest_run,-m slow -p no:cacheprovider,slow)

## make check: validate the config file (FORMCALL_CONFIG or formcall.toml) as a deploy would
check: $(STAMP)
	$(BIN)/python -m formcall_webhook check $(CONFIG)

simulator: $(STAMP)
	$(BIN)/python -m formcall_webhook.simulator --host $(HOST) --port $(SIM_PORT)

## make infra-check: shellcheck and checkov on infra/ (checkov gets its own venv; the first run takes minutes)
infra-check:
	bash infra/check.sh

clean:
	rm -rf $(VENV) .venv-checkov .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov

## make soak: 2,000 distinct leads per store (memory, Redis, Firestore emulator), senders that never retry,
## FormCall down and out of service hours in stretches and failing 10% of calls: none lost, none rung twice
soak: $(STAMP)
	$(BIN)/python tests/soak.py --leads 2000 --store all

## make bench: throughput, latency, in-process cost, cold start and memory against baselines (bench/README.md)
## (about 6 minutes on 2 cores; `make bench BENCH_ARGS=--quick` is a 1-minute smoke run)
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## make fuzz: the Hypothesis fuzz suite at length (profile "fuzz": about 7,500 requests; `make test` runs ~300)
.PHONY: fuzz
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider
