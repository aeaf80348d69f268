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
    ran = run(["dvc", "repro", "submission"], repo).stdout  # the scores; what follows them is not compared
    assert "Running stage 'ensemble'" in ran and "Running stage 'submission'" in ran
    assert "Running stage 'train" not in ran and "Running stage 'crops'" not in ran
    run(["git", "commit", "-qam", "Stacking ensemble"], repo)

    text = run(["dvc", "metrics", "diff", "--all", "main", "stacking"], repo).stdout
    diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json", "main", "stacking"],
                          repo).stdout)
    f1 = diff["metrics/ensemble.json"]["val_macro_f1"]
    on_main = json.loads(run(["git", "show", "main:metrics/ensemble.json"], repo).stdout)
    on_branch = json.loads((repo / "metrics" / "ensemble.json").read_text())
    assert f1["old"] == on_main["val_macro_f1"] and f1["new"] == on_branch["val_macro_f1"]
    assert on_main["method"] == "per_class_f1" and on_branch["method"] == "stacking"
    weights = json.loads((repo / "data" / "processed" / "ensemble" / "weights.json").read_text())
    assert weights["method"] == "stacking" and "coef" in weights  # the logistic regression ran
    assert "metrics/ensemble.json" in text


def _nodes(tree):
    """Every mapping nested anywhere in ``dvc exp show --json``'s output."""
    if isinstance(tree, dict):
        yield tree
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)


def test_queued_experiment_runs_and_shows_its_metrics(tiny_repo):
    run(["dvc", "exp", "run", "--queue", "-S", "ensemble.method=mean", "-n", "mean-ens", "submission"], tiny_repo)
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
    found = [node for node in _nodes(shown)
             if node.get("name") == "mean-ens" and (node.get("data") or {}).get("params")]
    assert found, "the experiment is not in `dvc exp show`"
    exp = found[0]
    params = exp["data"]["params"]["params.yaml"]["data"]
    metrics = exp["data"]["metrics"]["metrics/ensemble.json"]["data"]
    assert params["ensemble"]["method"] == "mean" and metrics["method"] == "mean"
    assert 0.0 <= metrics["val_macro_f1"] <= 1.0
    run(["dvc", "queue", "stop"], tiny_repo, check=False)


def _crop_side(repo: Path) -> int:
    from springtail.common.store import load_crops

    images, _ = load_crops(repo / "data" / "processed" / "crops", "train")
    return images.shape[1]


def test_changing_the_crop_side_recrops(tiny_repo, tmp_path):
    """The crop side is a key DVC's run-cache sees: each value gets its own crops, also when
    both values are in the run-cache (a key named `size` would restore the old crops)."""
    repo = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_repo), str(repo)], tmp_path)
    # the tiny run's cache (this worker's own copy): its run-cache already holds the 32 px crops
    run(["dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc" / "cache")], repo)
    assert "Running stage" not in run(["dvc", "repro", "crops"], repo).stdout  # restored, not run
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
