# The two commands a fresh machine needs: `make demo` and `make test`.
# Each creates .venv if missing and installs the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench soak install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/qnode testbed configs/testbeds/chain-3node-sim.yaml --experiment configs/experiments/chain3-swap.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/qnode bench

# Not part of `make test`: the 3-node chain in processes mode under 5% message loss, 1%
# duplication and reordering for MINUTES of wall time (default 10; `make soak MINUTES=1` for a
# smoke). Prints pairs delivered, wrong pairs, leaked qubits and memory growth per minute.
MINUTES ?= 10
soak: $(STAMP)
	$(BIN)/qnode soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) runs .pytest_cache
