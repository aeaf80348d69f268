"""The review stage on a crop store: opinions, targets, the review list and their metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import N_CLASSES
from springtail.common.config import to_dict
from springtail.common.f1 import macro_f1
from springtail.common.store import load_crops
from springtail.models.training import validation_mask
from springtail.review.opinion import ReviewConfig, crop_features, out_of_fold
from springtail.review.second_pass import second_pass, target_scores


@dataclass
class Review:
    opinion: pd.DataFrame  # crop_id, m0..m8: out-of-fold model probabilities
    targets: pd.DataFrame  # crop_id, label, p0..p8: what the models train on
    review: pd.DataFrame  # disputed boxes, most likely mislabelled first
    metrics: dict


def build_review(crops: Path, labels: pd.DataFrame, config: ReviewConfig, val_fold: int,
                 truth: pd.DataFrame | None = None) -> Review:
    """Opinions of every training crop, the second pass and its scores.

    ``truth`` (the demo's train_truth.csv) is read only to score the targets.
    """
    images, index = load_crops(crops, "train")
    validation_mask(index, val_fold)  # the same check as training: both sides must exist
    features = crop_features(images, config)
    consensus = index["label"].to_numpy(dtype=int)
    folds = index["fold"].to_numpy()
    opinion = np.round(out_of_fold(features, consensus, folds, val_fold, config.inverse_l2), 6)
    targets, review = second_pass(index, labels, opinion, config.weight, config.relabel)
    predicted = opinion.argmax(axis=1)
    val = folds == val_fold
    metrics = {
        "crops": int(len(index)),
        "disputed_boxes_reviewed": int(len(review)),
        "targets_changed": int((targets["label"].to_numpy() != consensus).sum()),
        "model_agrees_with_consensus": round(float((predicted == consensus).mean()), 5),
        "model_macro_f1_vs_consensus": {"training_folds": round(macro_f1(consensus[~val], predicted[~val]), 5),
                                        "validation_fold": round(macro_f1(consensus[val], predicted[val]), 5)},
        "config": to_dict(config),
    }
    if truth is not None:
        metrics |= {"truth": target_scores(targets, index, labels, truth)}
    table = pd.DataFrame(opinion, columns=[f"m{k}" for k in range(N_CLASSES)])
    table.insert(0, "crop_id", index["crop_id"].to_numpy())
    return Review(table, targets, review, metrics)
