# davam_plugin: `make demo` trains and uses DAVAM on the built-in demo corpus,
# `make test` runs the test suite. Both create/update the virtual environment first.
VENV ?= .venv
BIN := $(VENV)/bin
export VENV

.PHONY: venv demo test bench clean-demo

venv:
	@bash scripts/setup_env.sh

demo: venv
	@bash scripts/demo.sh

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python scripts/bench_train.py

clean-demo:
	rm -rf demo-work
