"""Macro F1, per-class F1, confusion rows, the Kaggle leaderboard and the evaluate stage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from springtail.scoring.metrics import (
    confusion,
    confusion_rows,
    evaluate_predictions,
    leaderboard,
    macro_f1,
    per_class_dict,
    per_class_table,
)

REPO = Path(__file__).resolve().parents[1]
PROBS = [f"p{c}" for c in range(9)]


def test_macro_f1_counts_every_class():
    y = np.array([0, 0, 1, 1])
    assert macro_f1(y, y) == pytest.approx(2 / 9)  # seven classes absent: F1 0, as on Kaggle
    assert macro_f1(np.arange(9), np.arange(9)) == 1.0


def test_per_class_and_confusion():
    y, pred = np.array([0, 0, 8, 8]), np.array([0, 8, 8, 8])
    f1 = per_class_dict(y, pred)
    assert f1["AUTRE"] == pytest.approx(2 / 3) and f1["FOND"] == pytest.approx(0.8) and f1["LEP"] == 0
    assert confusion(y, pred)[0, 8] == 1 and confusion(y, pred).sum() == 4
    rows = confusion_rows(y, pred)
    assert list(rows.columns) == ["actual", "predicted"] and rows.iloc[1].tolist() == ["AUTRE", "FOND"]
    assert per_class_table(y, pred)["class"].tolist()[-1] == "FOND"


def solution():
    idx = [f"0.{i}" for i in range(18)]
    return pd.DataFrame({"idx": idx, "gt": np.arange(18) % 9, "Usage": ["Public"] * 9 + ["Private"] * 9})


def test_leaderboard_scores_public_and_private_apart():
    sol = solution()
    pred = pd.Series(np.r_[np.arange(9), np.zeros(9, int)], index=sol["idx"])  # right on public only
    scores = leaderboard(sol, pred)
    assert scores["public_macro_f1"] == 1.0
    assert scores["private_macro_f1"] == pytest.approx(macro_f1(np.arange(9), np.zeros(9, int)))
    with pytest.raises(ValueError, match="without a prediction, e.g. '0.17'"):
        leaderboard(sol, pred.iloc[:-1])
    with pytest.raises(ValueError, match="missing column 'Usage'"):
        leaderboard(sol.drop(columns="Usage"), pred)


def prediction_tables():
    val = pd.DataFrame({"crop_id": range(9), "image_id": "a", "label": np.arange(9),
                        **dict(zip(PROBS, np.eye(9).T))})
    test = pd.DataFrame({"idx": solution()["idx"], **dict(zip(PROBS, np.eye(9)[np.arange(18) % 9].T))})
    return val, test


def test_evaluate_predictions_with_and_without_answers():
    val, test = prediction_tables()
    metrics, rows, per_class = evaluate_predictions(val, test)
    assert metrics["val_macro_f1"] == 1.0 and metrics["n_val"] == 9 and "public_macro_f1" not in metrics
    assert metrics["val_macro_f1_ci90"] == {"low": 1.0, "high": 1.0}  # one image: one group
    assert "public_macro_f1_ci90" not in metrics
    metrics, _, _ = evaluate_predictions(val, test, solution())
    assert metrics["public_macro_f1"] == 1.0 and metrics["private_macro_f1"] == 1.0
    # Each test crop is its own group. With one crop per class almost every resample misses a
    # class, which then scores 0 as on Kaggle: the interval of so few crops lies below 1.
    for half in ("public", "private"):
        ci = metrics[f"{half}_macro_f1_ci90"]
        assert set(ci) == {"low", "high"} and 0 < ci["low"] <= ci["high"] < 1.0


def noisy_val(n_images: int = 60, per_image: int = 5, seed: int = 0) -> pd.DataFrame:
    """A validation table whose predictions are right on about 70 % of the crops."""
    rng = np.random.default_rng(seed)
    n = n_images * per_image
    label = rng.integers(0, 9, n)
    pred = np.where(rng.random(n) < 0.7, label, rng.integers(0, 9, n))
    return pd.DataFrame({"crop_id": range(n), "image_id": [f"img{k // per_image}" for k in range(n)],
                         "label": label, **dict(zip(PROBS, np.eye(9)[pred].T))})


def test_validation_interval_resamples_source_images():
    val = noisy_val()
    metrics, _, _ = evaluate_predictions(val)
    ci = metrics["val_macro_f1_ci90"]
    assert ci["low"] < metrics["val_macro_f1"] < ci["high"]
    one_image, _, _ = evaluate_predictions(val.assign(image_id="same"))  # one group: no spread
    assert one_image["val_macro_f1_ci90"]["low"] == one_image["val_macro_f1_ci90"]["high"]
    per_crop, _, _ = evaluate_predictions(val.drop(columns="image_id"))  # each crop its own group
    assert per_crop["val_macro_f1_ci90"]["low"] < per_crop["val_macro_f1_ci90"]["high"]
    assert per_crop["val_macro_f1_ci90"] != ci


def test_evaluate_stage(tmp_path):
    val, test = prediction_tables()
    (tmp_path / "pred").mkdir()
    val.to_csv(tmp_path / "pred" / "val.csv", index=False)
    test.to_csv(tmp_path / "pred" / "test.csv", index=False)
    (tmp_path / "raw").mkdir()
    spec = importlib.util.spec_from_file_location("stage_evaluate", REPO / "stages" / "evaluate.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    argv = ["--raw-dir", str(tmp_path / "raw"), "--predictions", str(tmp_path / "pred"),
            "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "plots")]
    stage.main(argv)
    assert "public_macro_f1" not in json.loads((tmp_path / "m.json").read_text())
    solution().to_csv(tmp_path / "raw" / "solution.csv", index=False)
    stage.main(argv)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["private_macro_f1"] == 1.0 and metrics["per_class_f1"]["FOND"] == 1.0
    assert metrics["val_macro_f1_ci90"] == {"low": 1.0, "high": 1.0}
    assert 0 < metrics["private_macro_f1_ci90"]["low"] <= metrics["private_macro_f1_ci90"]["high"] < 1
    assert len(pd.read_csv(tmp_path / "plots" / "confusion.csv")) == 9
    assert pd.read_csv(tmp_path / "plots" / "per_class_f1.csv").columns.tolist() == ["class", "f1"]
