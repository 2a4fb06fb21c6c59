# Every target bootstraps .venv by itself; re-running is quiet once it is up to date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := dev,cloud,postgres,ble,vendors,karrio,demo
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Two workers (pytest-xdist): most tests wait on subprocesses, brokers and databases, so
# two processes halve the wall time on 2 cores. Tests are dealt out one by one
# (--dist loadgroup), except those marked xdist_group, which share a worker (the schemathesis
# module's last test checks what the others recorded). `make test PYTEST_WORKERS=0` runs
# in this process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
# `make fuzz`: seconds per atheris target (two targets at a time).
FUZZ_SECONDS ?= 60

.PHONY: venv test lint format bench demo clean fuzz soak

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "bootstrapping $(VENV) (once; takes a minute on a fresh machine)"
	@$(PIP) install -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup \
		--cov --cov-report=term:skip-covered --cov-fail-under=90 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

demo: $(STAMP)
	$(BIN)/lockhub demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info fuzz/corpus fuzz/crashes

fuzz: $(STAMP)
	$(BIN)/python -m fuzz.run --seconds $(FUZZ_SECONDS)

# The long crash campaign (docs/reliability.md): SIGKILLs, power cuts and broker restarts on
# each cloud backend, then the figures table. Add e.g. --seed N to replay a schedule.
SOAK_ARGS ?= --rounds 200 --power-cuts 50
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak $(SOAK_ARGS)
