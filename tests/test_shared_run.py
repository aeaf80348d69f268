"""The tiny run shared by xdist workers (tests/conftest.py): made once, by whichever worker
asks first, and a failed one is not made again by every worker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import conftest


def test_workers_asking_at_once_get_one_run(tmp_path, monkeypatch):
    built = []

    def build(repo: Path) -> Path:
        built.append(repo)
        time.sleep(0.3)  # long enough for the other callers to reach the lock
        repo.mkdir()
        return repo

    monkeypatch.setattr(conftest, "build_tiny_run", build)
    got = []
    callers = [threading.Thread(target=lambda: got.append(conftest.shared_tiny_run(tmp_path / "shared")))
               for _ in range(3)]  # each opens the lock file itself, as each worker process does
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert built == [tmp_path / "shared" / "repo"]
    assert got == [tmp_path / "shared" / "repo"] * 3


def test_a_failed_run_fails_every_worker_with_its_message(tmp_path, monkeypatch):
    calls = []

    def broken(repo: Path) -> Path:
        calls.append(repo)
        pytest.fail("dvc repro exited 1 (stage 'crops')")

    monkeypatch.setattr(conftest, "build_tiny_run", broken)
    for _ in range(2):
        with pytest.raises(pytest.fail.Exception, match=r"dvc repro exited 1 \(stage 'crops'\)"):
            conftest.shared_tiny_run(tmp_path / "shared")
    assert len(calls) == 1
