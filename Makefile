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

# two workers (pytest-xdist), one test file each at a time: the suite is mostly fairseq CLI runs
# on one thread each, so a 2-core machine runs it in about half the time
test: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=10

bench: venv
	$(BIN)/python scripts/bench_train.py

clean-demo:
	rm -rf demo-work
