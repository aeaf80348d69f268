# The two commands of the README: `make repro` (the pipeline) and `make test`.
PYTHON ?= python3.11
# The interpreter itself, not a virtual environment's (which has no pip): it creates the
# environment and bootstraps uv into it.
BASE_PYTHON := $(shell $(PYTHON) -c 'import os, sys; print(os.path.join(sys.base_prefix, "bin", "python3"))')
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env lock repro test bench docs docs-build plots-template clean-env

# The environment is exactly uv.lock: every package (about 150 on Linux) at the version and
# with the sha256 the lock records, nothing else (`uv sync --frozen` removes what the lock does
# not name). It is rebuilt when uv.lock changes; `make lock` refreshes the lock after an edit of
# pyproject.toml, and rewrites stages/numeric.txt, the versions of the numeric packages that the
# computing stages depend on (so that they re-run when one changes). uv itself is pinned in the
# lock; the first time, the system's pip bootstraps that same version (the environment has no pip). Installing takes about 25 s on 2 cores,
# most of it unpacking torch's 4.3 GB of CUDA libraries, which come with torch 2.14.1 even on
# CPU machines. Bytecode is compiled once here, on every core, since with
# PYTHONDONTWRITEBYTECODE=1 each stage would compile its imports again; the packages' own test
# folders (a quarter of the files, never imported) are left out. A few files of some packages
# are not meant to compile (templates, Python 2 examples): ignored, as pip ignores them.
UV_VERSION := 0.13.9
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
$(VENV)/.installed: uv.lock
	test -x $(BIN)/python || $(BASE_PYTHON) -m venv --without-pip $(VENV)
	test -x $(BIN)/uv || $(BASE_PYTHON) -m pip --python $(BIN)/python install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv sync --quiet --frozen --all-extras --python $(BIN)/python
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

# After an edit of pyproject.toml's dependencies: resolve again, then `make env`.
lock:
	$(BIN)/uv lock
	$(BIN)/python -m benchmarks.numeric --update

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

# The documentation site (mkdocs.yml): served with live reload on http://127.0.0.1:8000.
docs: env
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The site built once, a warning (a broken link, a page left out of the nav) failing the build;
# written to a temporary folder, never to site/.
docs-build: env
	site=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $$site && rm -rf $$site

# Vendor the Vega libraries pinned in .dvc/plots/build.py (npm) and rebuild the page template
# of `dvc plots show` with them inlined, so that it renders offline; commit .dvc/plots/.
plots-template:
	$(PYTHON) .dvc/plots/build.py

clean-env:
	rm -rf $(VENV)
