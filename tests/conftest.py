"""Shared fixtures: the real reference files, a tiny copy of the repository run through dvc, and
headless Chromium to render pages offline."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the benchmarks package (its SSH server helper), however pytest runs
    sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent  # the virtualenv's bin: python, dvc, torchrun


# Real annotation files from the challenge, kept in the repository (see its README).
REFERENCE = REPO / "tests" / "data" / "reference"


def params_config(cls, section: str, params: str = "params.yaml", **overrides):
    """Section ``section`` of the repository's params file as ``cls``, with ``overrides``:
    the configs have no defaults of their own, params.yaml holds them."""
    import dataclasses

    from springtail.common.config import load_section

    return dataclasses.replace(load_section(cls, section, REPO / params), **overrides)


def model_section(name: str, **overrides) -> dict:
    """params.yaml's section of model ``name`` with ``overrides`` (a tiny test network, ...)."""
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())[name] | overrides


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: the virtualenv first on PATH, no DVC telemetry."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "springtail-tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@springtail.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "springtail-tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@springtail.invalid")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    env = tool_env()
    if (Path(cwd) / "src" / "springtail").is_dir():  # a repo copy runs its own sources
        env["PYTHONPATH"] = str(Path(cwd) / "src")
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def copy_repo(dest: Path, params: str = "params.tiny.yaml") -> Path:
    """Copy the project's source files (what git would clone) into ``dest`` as a fresh repo.

    Outputs, caches and dvc.lock stay behind; ``params`` is copied over params.yaml.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if not src.is_file() or rel == "dvc.lock" or rel.startswith(("data/", "models/", "metrics/")):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    shutil.copy2(REPO / params, dest / "params.yaml")
    for rel in ("data", "models", "metrics"):
        (dest / rel).mkdir(exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "tiny copy"], dest)
    return dest


def one_cpu() -> list[str]:
    """Under xdist, a ``taskset`` prefix that pins a command to one CPU of this process's set,
    chosen by the worker's number: the two tiny runs that start together (the shared one and
    the reproducibility test's own) then each run alone on a core, with one thread, instead of
    four threads spinning on two cores. Without xdist or ``taskset``: no prefix."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    cpus = sorted(os.sched_getaffinity(0))
    if worker is None or len(cpus) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "--cpu-list", str(cpus[int(worker.removeprefix("gw")) % len(cpus)])]


def build_tiny_run(repo: Path) -> Path:
    """A copy of the repository in ``repo`` on the tiny params after one full ``dvc repro``, committed."""
    copy_repo(repo)
    run([*one_cpu(), "dvc", "repro"], repo, timeout=900)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    return repo


def shared_tiny_run(shared: Path) -> Path:
    """The tiny run of this session's xdist workers, in their common folder ``shared``: made
    by the first worker that asks, while the others wait on the lock. A failed run is not
    made again by each worker: they all fail with its message."""
    shared.mkdir(exist_ok=True)
    done, failed = shared / "done", shared / "failed"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if failed.exists():
            pytest.fail(f"the tiny run failed in another worker:\n{failed.read_text()}")
        if not done.exists():
            try:
                build_tiny_run(shared / "repo")
            except BaseException as err:
                failed.write_text(str(err))
                raise
            done.touch()
    return shared / "repo"


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A copy of the repository on the tiny params after one full ``dvc repro``, committed.

    Under xdist the run is made once per session (:func:`shared_tiny_run`) and each worker
    gets its own copy: its tests may change it (a forced rerun, a queued experiment) in
    the order of a one-process session, never under another worker's feet.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build_tiny_run(tmp_path_factory.mktemp("tiny") / "repo")
    shared = shared_tiny_run(tmp_path_factory.getbasetemp().parent / "tiny-run")
    repo = tmp_path_factory.mktemp("tiny") / "repo"
    shutil.copytree(shared, repo, symlinks=True)
    return repo


@pytest.fixture
def tiny_repo_copy(tiny_repo, tmp_path) -> Path:
    """A copy of the tiny run for this test alone, to change at will."""
    repo = tmp_path / "tiny"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    return repo


# The module that makes its own tiny run from scratch, to compare it with the shared one.
REPRODUCIBILITY = "tests/test_reproducible.py"
# The module with the most work on the shared tiny run: the first worker starts the run with it.
LONGEST_ON_TINY_RUN = "tests/test_remote.py"


def pytest_collection_modifyitems(config, items):
    """Order the modules (xdist's units of work under ``--dist loadscope``) so that both tiny
    runs start at once, one per worker, and no worker then waits for them: first the module
    with the most work on the shared run (its worker makes the run), then the reproducibility
    module (the second worker makes its own run meanwhile), then the modules without the tiny
    run, then the other modules of the tiny run. Within a module, the order stays."""
    def module(item) -> str:
        return item.nodeid.split("::")[0]

    tiny = {module(item) for item in items if "tiny_repo" in item.fixturenames}
    rank = {LONGEST_ON_TINY_RUN: 0, REPRODUCIBILITY: 1}
    items.sort(key=lambda item: rank.get(module(item), 3 if module(item) in tiny else 2))


@pytest.fixture
def one_thread():
    """One torch thread for the test (the machine is shared: OpenMP threads would spin against
    the other xdist worker); modules that train ask for it with ``usefixtures``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless Chromium; skips without one, except in CI where pages must render."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        message = "headless Chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must render the pages")
        pytest.skip(message)
    return found


# Every host name fails to resolve and every request goes to a closed local port: a page that
# needs the network fails to load it, whatever the machine's connectivity.
NO_NETWORK = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
              "--proxy-bypass-list=<-loopback>")


def browse(chromium: str, page_path: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on a local page, offline, with the console logged to stderr."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           *NO_NETWORK, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--hide-scrollbars", "--virtual-time-budget=10000", *args, page_path.resolve().as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result
