"""Comparing variants: metrics across git branches and queued DVC experiments."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import run

pytestmark = pytest.mark.slow


def _set_param(repo: Path, old: str, new: str) -> None:
    params = repo / "params.yaml"
    text = params.read_text()
    assert old in text
    params.write_text(text.replace(old, new))


def test_metrics_diff_between_branches(tiny_repo, tmp_path):
    repo = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_repo), str(repo)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc" / "cache")], repo)
    run(["dvc", "checkout"], repo)
    run(["git", "checkout", "-q", "-b", "stacking"], repo)
    _set_param(repo, "method: per_class_f1", "method: stacking")
    ran = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'ensemble'" in ran and "Running stage 'submission'" in ran
    assert "Running stage 'train" not in ran and "Running stage 'crops'" not in ran
    run(["git", "commit", "-qam", "Stacking ensemble"], repo)

    text = run(["dvc", "metrics", "diff", "main", "stacking"], repo).stdout
    diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json", "main", "stacking"],
                          repo).stdout)
    assert "metrics/ensemble.json" in diff
    f1 = diff["metrics/ensemble.json"]["val_macro_f1"]
    assert {"old", "new"} <= set(f1)
    if f1["old"] != f1["new"]:
        assert "metrics/ensemble.json" in text and "val_macro_f1" in text


def test_queued_experiment_runs_and_shows_its_metrics(tiny_repo):
    run(["dvc", "exp", "run", "--queue", "-S", "ensemble.method=mean", "-n", "mean-ens"], tiny_repo)
    run(["dvc", "queue", "start", "-j", "1"], tiny_repo)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], tiny_repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    else:
        pytest.fail(f"queued experiment did not finish:\n{status}")
    assert "Failed" not in status, run(["dvc", "queue", "logs", "mean-ens"], tiny_repo, check=False).stdout
    shown = json.loads(run(["dvc", "exp", "show", "--json"], tiny_repo).stdout)
    text = json.dumps(shown)
    assert "mean-ens" in text
    assert "metrics/ensemble.json" in text
    run(["dvc", "queue", "stop"], tiny_repo, check=False)


def _crop_side(repo: Path) -> int:
    from springtail.store import load_crops

    images, _ = load_crops(repo / "data" / "processed" / "crops", "train")
    return images.shape[1]


def test_changing_the_crop_side_recrops(tiny_repo, tmp_path):
    """The crop side is a key DVC's run-cache sees: each value gets its own crops, also when
    both values are in the run-cache (a key named `size` would restore the old crops)."""
    repo = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_repo), str(repo)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(tmp_path / "cache")], repo)
    run(["dvc", "repro", "crops"], repo)
    assert _crop_side(repo) == 32
    _set_param(repo, "crop_px: 32", "crop_px: 24")
    ran = run(["dvc", "repro", "crops"], repo).stdout
    assert "Running stage 'crops'" in ran
    assert _crop_side(repo) == 24
    _set_param(repo, "crop_px: 24", "crop_px: 32")
    run(["dvc", "repro", "crops"], repo)  # restored from the run-cache: both sides are in it
    assert _crop_side(repo) == 32
    _set_param(repo, "crop_px: 32", "crop_px: 24")
    run(["dvc", "repro", "crops"], repo)
    assert _crop_side(repo) == 24
