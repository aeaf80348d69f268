# The two commands of the README: `make repro` (the pipeline) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env repro test bench plots-template clean-env

# The environment is rebuilt when pyproject.toml changes. pip would compile the installed modules
# on one core; compileall does it on all of them (14 s less on 2). A few files of some packages are
# not meant to compile (templates, Python 2 examples): ignored, as pip ignores them.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

env: $(VENV)/.installed

repro: env
	$(BIN)/dvc repro

test: env
	$(BIN)/python -m pytest -q

# Speed of the hot paths on this machine; the last line printed is JSON (see benchmarks/bench.py).
bench: env
	$(BIN)/python -m benchmarks.bench

# Vendor the Vega libraries pinned in .dvc/plots/build.py (npm) and rebuild the page template
# of `dvc plots show` with them inlined, so that it renders offline; commit .dvc/plots/.
plots-template:
	$(PYTHON) .dvc/plots/build.py

clean-env:
	rm -rf $(VENV)
