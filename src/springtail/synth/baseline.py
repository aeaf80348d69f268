"""A deliberately simple baseline that measures how hard a synthetic data set is.

It crops the square around every training box (true class from
``train_truth.csv``; the box's longer side, so the body keeps its shape), shrinks
it to 32 x 32 RGB pixels and scores logistic regression and a small random
forest on the raw pixels (logistic regression
after a 100-component PCA): macro F1 over the seven taxa and AUTRE, by
cross-validation grouped by image, and on the test crops that show a
specimen. The synthetic set is meant to sit far above chance and far from a
perfect score for such a model.

    python -m springtail.synth.baseline data/synthetic
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from springtail.classes import BACKGROUND
from springtail.yolo import Box, read_annotations

SIDE = 32  # crops are shrunk to SIDE x SIDE RGB


def _shrink(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), np.float32).ravel() / 255


def _square(box: Box, width: int, height: int, factor: float) -> tuple[int, int, int, int]:
    """The square around ``box`` (side = its longer side), in pixels of the decoded image."""
    side = max(box.w * width, box.h * height)
    cx, cy = box.xc * width, box.yc * height
    return tuple(int(round(v * factor)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))


def train_features(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (N, SIDE*SIDE*3), y (N,), groups (N,)) for every training box with a specimen."""
    truth = pd.read_csv(data / "train_truth.csv", dtype={"image_id": str})
    feats, labels, groups = [], [], []
    for group, (image_id, rows) in enumerate(truth.groupby("image_id", sort=True)):
        boxes = {b.line_no: b for b in read_annotations(data / "train" / f"{image_id}.txt")}
        with Image.open(data / "train" / f"{image_id}.jpg") as image:
            w, h = image.size
            image.draft("RGB", (w // 4, h // 4))  # fast reduced JPEG decode
            factor = image.size[0] / w
            for line, cls in zip(rows["line"], rows["truth"]):
                if cls == BACKGROUND:
                    continue
                feats.append(_shrink(image.crop(_square(boxes[line], w, h, factor))))
                labels.append(cls)
                groups.append(group)
    return np.array(feats), np.array(labels), np.array(groups)


def test_features(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) for the test crops that show a specimen."""
    solution = pd.read_csv(data / "solution.csv", dtype={"idx": str})
    solution = solution[solution["gt"] != BACKGROUND]
    feats = []
    for idx in solution["idx"]:
        with Image.open(data / "test" / f"{idx}.jpg") as image:
            image.draft("RGB", (image.size[0] // 4, image.size[1] // 4))
            feats.append(_shrink(image))
    return np.array(feats), solution["gt"].to_numpy()


def models(seed: int = 0) -> dict[str, object]:
    """The baseline models; classes are weighted inversely to their frequency (macro F1)."""
    return {
        "logistic_regression": make_pipeline(
            StandardScaler(), PCA(100, svd_solver="randomized", random_state=seed),
            LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced"),
        ),
        "random_forest": RandomForestClassifier(
            n_estimators=200, min_samples_leaf=2, class_weight="balanced_subsample", n_jobs=-1,
            random_state=seed,
        ),
    }


def evaluate(data: str | Path, folds: int = 5, seed: int = 0) -> dict[str, dict[str, float]]:
    """Macro F1 of each baseline model: grouped CV on the training boxes, and on the test crops."""
    data = Path(data)
    x, y, groups = train_features(data)
    x_test, y_test = test_features(data)
    scores: dict[str, dict[str, float]] = {}
    for name, model in models(seed).items():
        pred = np.empty_like(y)
        for train, held in GroupKFold(n_splits=folds).split(x, y, groups):
            pred[held] = model.fit(x[train], y[train]).predict(x[held])  # type: ignore[attr-defined]
        fitted = model.fit(x, y)  # type: ignore[attr-defined]
        scores[name] = {
            "cv_macro_f1": float(f1_score(y, pred, average="macro")),
            "test_macro_f1": float(f1_score(y_test, fitted.predict(x_test), average="macro")),
            "n_train_boxes": int(len(y)),
            "n_test_crops": int(len(y_test)),
        }
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description="Baseline macro F1 on a synthetic data set.")
    parser.add_argument("data", type=Path)
    args = parser.parse_args()
    print(json.dumps(evaluate(args.data), indent=2))


if __name__ == "__main__":
    main()
