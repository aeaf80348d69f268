"""Sharing results through a DVC remote: a local directory, a real SSH server, the run-cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.sshd import SshdUnavailable, local_sshd

from conftest import run

pytestmark = pytest.mark.slow


def _clone(src: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(src), str(dest)], src.parent)
    return dest


def _assert_up_to_date(repo: Path, *targets: str) -> None:
    status = run(["dvc", "status", "--json", *targets], repo)
    assert json.loads(status.stdout or "{}") == {}, status.stdout
    again = run(["dvc", "repro", *targets], repo)
    assert "Running stage" not in again.stdout, again.stdout


def _share_cache(repo: Path, tiny_repo: Path) -> None:
    """Point a clone at the tiny run's cache and check its outputs out of it."""
    run(["dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc" / "cache")], repo)
    run(["dvc", "checkout"], repo)


@pytest.fixture(scope="module")
def pushed_origin(tiny_repo, tmp_path_factory) -> tuple[Path, Path]:
    """A clone of the tiny run with a local-directory remote, after `dvc push --run-cache`.

    The tiny repository itself is shared by other modules, so it is cloned, never changed.
    """
    origin = _clone(tiny_repo, tmp_path_factory.mktemp("origin") / "repo")
    _share_cache(origin, tiny_repo)
    store = tmp_path_factory.mktemp("store") / "dvcstore"
    run(["dvc", "remote", "add", "-d", "team", str(store)], origin)
    run(["git", "commit", "-qam", "Add the team remote"], origin)
    run(["dvc", "push", "--run-cache"], origin)
    return origin, store


def test_local_remote_push_pull_round_trip(pushed_origin, tmp_path):
    origin, store = pushed_origin
    assert any(store.rglob("*")), "dvc push wrote nothing to the remote"
    b = _clone(origin, tmp_path / "b")
    assert not (b / "data" / "submission.csv").exists()
    run(["dvc", "pull"], b)
    for rel in ("data/submission.csv", "models", "data/processed/crops"):
        assert _digest(b / rel) == _digest(origin / rel), f"{rel} pulled differs from the pushed one"
    _assert_up_to_date(b)


def test_run_cache_spares_retraining(pushed_origin, tmp_path):
    """A trains a variant and pushes its run-cache; B gets that variant without training."""
    origin, _store = pushed_origin
    a = _clone(origin, tmp_path / "a")
    run(["dvc", "pull"], a)
    params = (a / "params.yaml").read_text()
    variant = params.replace("learning_rate: 0.1", "learning_rate: 0.2")  # cnn_xgb's booster
    assert variant != params
    (a / "params.yaml").write_text(variant)
    # up to the submission: what the variant changes (the detector and report stages after it are
    # the same stages through the run-cache, already shown by the round trips)
    first = run(["dvc", "repro", "submission"], a).stdout
    assert "Running stage 'train@cnn_xgb'" in first, first
    run(["dvc", "push", "--run-cache"], a)
    # B, a fresh clone, asks for the same variant: restored from the remote's run-cache.
    b = _clone(origin, tmp_path / "b")
    (b / "params.yaml").write_text(variant)
    second = run(["dvc", "repro", "--pull", "submission"], b).stdout
    for stage in ("train@cnn_xgb", "predict@cnn_xgb"):
        assert f"Stage '{stage}' is cached - skipping run" in second, second
    assert "Running stage 'train@" not in second and "Running stage 'predict@" not in second
    for rel in ("models/members/cnn_xgb", "data/processed/ensemble/test.csv", "data/submission.csv",
                "metrics/train/cnn_xgb.json", "metrics/timing/cnn_xgb.json"):
        assert _digest(b / rel) == _digest(a / rel), rel
    _assert_up_to_date(b, "submission")


def _digest(path: Path) -> dict[str, bytes]:
    """relpath -> bytes of a file, or of every file under a directory."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(f.relative_to(path.parent)): f.read_bytes() for f in files}


@pytest.fixture
def sshd(tmp_path):
    """A real OpenSSH server on 127.0.0.1, a free port and a throwaway key pair."""
    try:
        with local_sshd(tmp_path / "sshd") as server:
            yield server
    except SshdUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc}; CI must install it")
        pytest.skip(str(exc))


def _ssh_credentials(repo: Path, server) -> None:
    """User and key in .dvc/config.local, as a teammate keeps them (never committed)."""
    run(["dvc", "remote", "modify", "--local", "team", "user", server.user], repo)
    run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(server.key)], repo)
    assert "keyfile" not in (repo / ".dvc" / "config").read_text()


def test_ssh_remote_push_pull_round_trip(tiny_repo, sshd, tmp_path):
    a = _clone(tiny_repo, tmp_path / "a")
    # A needs the outputs to push them: take them from the tiny run's cache.
    _share_cache(a, tiny_repo)
    url = sshd.url(tmp_path / "ssh-store")
    run(["dvc", "remote", "add", "-d", "team", url], a)
    run(["git", "commit", "-qam", "Add the SSH remote"], a)
    _ssh_credentials(a, sshd)
    run(["dvc", "push"], a)
    assert any((tmp_path / "ssh-store").rglob("*")), "nothing arrived through SSH"
    b = _clone(a, tmp_path / "b")
    _ssh_credentials(b, sshd)
    run(["dvc", "pull"], b)
    for rel in ("data/submission.csv", "models"):
        assert _digest(b / rel) == _digest(a / rel), f"{rel} pulled through SSH differs from the pushed one"
    _assert_up_to_date(b)
