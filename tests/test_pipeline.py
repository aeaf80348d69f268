"""The whole pipeline through the real dvc command, on the tiny params."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import run

pytestmark = pytest.mark.slow

STAGES = ("synthesize", "consensus", "crops", "ensemble", "submission")


def test_repro_writes_every_output(tiny_repo):
    lock = (tiny_repo / "dvc.lock").read_text()
    for stage in STAGES:
        assert f"  {stage}:" in lock, f"stage {stage} missing from dvc.lock"
    for model in yaml.safe_load((tiny_repo / "params.yaml").read_text())["models"]:
        for stage in ("train", "predict", "evaluate"):
            assert f"  {stage}@{model}:" in lock
        metrics = json.loads((tiny_repo / "metrics" / "train" / f"{model}.json").read_text())
        assert 0.0 <= metrics["val_macro_f1"] <= 1.0
        assert {"public_macro_f1", "private_macro_f1"} <= set(metrics)


def test_submission_matches_the_sample(tiny_repo):
    raw = tiny_repo / "data" / "synthetic"
    sample = pd.read_csv(raw / "sample_submission.csv", dtype={"idx": str})
    submission = pd.read_csv(tiny_repo / "data" / "submission.csv", dtype={"idx": str})
    assert list(submission.columns) == ["idx", "gt"]
    assert submission["idx"].tolist() == sample["idx"].tolist()
    assert submission["gt"].between(0, 8).all()


def test_status_is_clean_and_repro_is_a_noop(tiny_repo):
    status = run(["dvc", "status", "--json"], tiny_repo)
    assert json.loads(status.stdout or "{}") == {}
    again = run(["dvc", "repro"], tiny_repo)
    assert "Running stage" not in again.stdout


def test_metrics_show_reports_every_score_file(tiny_repo):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], tiny_repo).stdout)
    (data,) = [rev["data"] for rev in shown.values()]  # the workspace only
    models = yaml.safe_load((tiny_repo / "params.yaml").read_text())["models"]
    for rel in ["metrics/ensemble.json", *(f"metrics/train/{m}.json" for m in models)]:
        on_disk = json.loads((tiny_repo / rel).read_text())
        assert data[rel]["data"]["val_macro_f1"] == on_disk["val_macro_f1"], rel
        assert data[rel]["data"]["private_macro_f1"] == on_disk["private_macro_f1"], rel
