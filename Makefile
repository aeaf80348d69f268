# The two commands of the README: `make repro` (the pipeline) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env repro test bench plots-template clean-env

# The environment is rebuilt when pyproject.toml changes. uv (pinned, installed by pip into the
# environment) installs the packages: 23 s instead of pip's 66 s on 2 cores, most of it unpacking
# torch's 4.3 GB of CUDA libraries, which come with torch 2.14.1 even on CPU machines. Bytecode is
# compiled once here, on every core, since with PYTHONDONTWRITEBYTECODE=1 each stage would compile
# its imports again; the packages' own test folders (a quarter of the files, never imported) are
# left out. A few files of some packages are not meant to compile (templates, Python 2 examples):
# ignored, as pip ignores them.
UV_VERSION := 0.13.9
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

env: $(VENV)/.installed

repro: env
	$(BIN)/dvc repro

# One pytest-xdist worker per core this process may use; a module's tests stay on one worker (its
# fixtures are made once) and the tiny pipeline run is made once for all workers, each testing its
# own copy (tests/conftest.py). The fast loop: `.venv/bin/python -m pytest -q -m "not slow" -n 2`.
TEST_WORKERS ?= $(shell nproc)
test: env
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# Speed of the hot paths on this machine; the last line printed is JSON (see benchmarks/bench.py).
bench: env
	$(BIN)/python -m benchmarks.bench

# Vendor the Vega libraries pinned in .dvc/plots/build.py (npm) and rebuild the page template
# of `dvc plots show` with them inlined, so that it renders offline; commit .dvc/plots/.
plots-template:
	$(PYTHON) .dvc/plots/build.py

clean-env:
	rm -rf $(VENV)
