"""The submission file: built in the sample's order and checked as Kaggle would; the stages
that produce it (ensemble, submission)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from springtail.scoring.submission import build_submission, check_submission

REPO = Path(__file__).resolve().parents[1]
PROBS = [f"p{c}" for c in range(9)]
IDS = ["0.0146642344262495340.0082065942776055060.4910173826970905", "0.2", "0.10", "7"]


def sample():
    return pd.DataFrame({"idx": IDS, "gt": 0})


def test_build_follows_the_sample_order_and_takes_the_argmax():
    test = pd.DataFrame({"idx": IDS[::-1], **dict(zip(PROBS, np.eye(9)[[3, 8, 0, 5]].T))})
    sub = build_submission(test, sample())
    assert sub["idx"].tolist() == IDS and sub["gt"].tolist() == [5, 0, 8, 3]
    assert sub.columns.tolist() == ["idx", "gt"]


@pytest.mark.parametrize("ids, message", [
    (IDS[:3], "missing: '7'"),
    ([*IDS, "0.99"], "not in sample_submission.csv: '0.99'"),
    ([*IDS[:3], "0.2"], "duplicate idx '0.2'"),
])
def test_build_refuses_missing_extra_and_duplicate_idx(ids, message):
    test = pd.DataFrame({"idx": ids, **{p: 1 / 9 for p in PROBS}})
    with pytest.raises(ValueError, match=f"ens/test.csv: .*{message}"):
        build_submission(test, sample(), name="ens/test.csv")


@pytest.mark.parametrize("gt", [[0, 1, 2, 9], [0, 1, 2, -1], [0, 1, 2, 1.5], [0, 1, 2, "x"], [0, 1, 2, None]])
def test_check_refuses_bad_classes(gt):
    with pytest.raises(ValueError, match="integer 0..8; bad at idx '7'"):
        check_submission(pd.DataFrame({"idx": IDS, "gt": gt}), sample(), name="sub.csv")


def test_check_refuses_wrong_order_and_columns():
    with pytest.raises(ValueError, match="not in the order"):
        check_submission(pd.DataFrame({"idx": IDS[::-1], "gt": 0}), sample())
    with pytest.raises(ValueError, match="columns must be idx,gt"):
        check_submission(pd.DataFrame({"idx": IDS, "label": 0}), sample())
    check_submission(pd.DataFrame({"idx": IDS, "gt": [0, 8, 4, 2]}), sample())  # a valid one passes


def load_stage(name):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ensemble_and_submission_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    labels = np.arange(36) % 9
    for model, noise in (("resnet", 0.2), ("vit", 0.5)):
        wrong = np.where(rng.random(36) < noise, rng.integers(0, 9, 36), labels)
        probs = np.eye(9)[wrong] * 0.8 + 0.2 / 9
        Path(f"pred/{model}").mkdir(parents=True)
        pd.DataFrame({"crop_id": range(36), "image_id": [f"im{i // 3}" for i in range(36)], "label": labels,
                      **dict(zip(PROBS, probs.T))}).to_csv(f"pred/{model}/val.csv", index=False)
        pd.DataFrame({"idx": IDS, **dict(zip(PROBS, rng.dirichlet(np.ones(9), 4).T))}).to_csv(
            f"pred/{model}/test.csv", index=False)
    params = yaml.safe_load((REPO / "params.tiny.yaml").read_text()) | {"models": ["resnet", "vit"]}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    load_stage("ensemble").main(["--predictions", "pred", "--out", "ens"])
    weights = json.loads(Path("ens/weights.json").read_text())
    assert weights["models"] == ["resnet", "vit"] and weights["method"] == params["ensemble"]["method"]
    Path("raw").mkdir()
    sample().to_csv("raw/sample_submission.csv", index=False)
    load_stage("submission").main(["--raw-dir", "raw", "--ensemble", "ens", "--out", "data/submission.csv",
                                   "--metrics", "ensemble.json", "--plots", "plots"])
    sub = pd.read_csv("data/submission.csv", dtype={"idx": str})
    assert sub["idx"].tolist() == IDS and sub["gt"].between(0, 8).all()
    assert not list(Path("data").glob(".*tmp"))  # the atomic write left nothing behind
    metrics = json.loads(Path("ensemble.json").read_text())
    assert metrics["best_single_model"] == max(weights["model_val_macro_f1"], key=weights["model_val_macro_f1"].get)
    assert metrics["gain_over_best_single"] == pytest.approx(
        metrics["val_macro_f1"] - metrics["best_single_val_macro_f1"])
    assert "public_macro_f1" not in metrics
