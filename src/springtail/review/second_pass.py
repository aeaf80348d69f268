"""Experts and model together: second-pass labels, and the boxes an expert should look at.

The model's out-of-fold probabilities act as a fifth expert whose evidence multiplies
the consensus posterior (a product of experts): ``q ~ p_consensus * p_model ^ weight``.
Only boxes the experts disputed change: where they all agreed, the consensus stands.

The review list ranks the disputed boxes by the chance that their consensus label is
wrong under ``q`` (``1 - q[label]``): an expert's look there is expected to fix the most
labels. Every disputed box is listed, with its votes, the consensus and its confidence,
and the model's out-of-fold opinion when the box was cut (a policy that keeps only
unanimous boxes cuts none of them: the experts' votes alone rank those).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.store import consensus_targets
from springtail.common.votes import PATTERNS
from springtail.labels.annotations import VOTE_COLUMNS
from springtail.labels.build import calibration_error

FLOOR = 1e-4  # a consensus posterior of exactly 0 (vote fractions) must not veto the model


def combine(consensus: np.ndarray, model: np.ndarray, weight: float) -> np.ndarray:
    """(N, 9) product-of-experts posterior of (N, 9) consensus and model probabilities."""
    joint = np.maximum(consensus, FLOOR) * np.maximum(model, FLOOR) ** weight
    return joint / joint.sum(axis=1, keepdims=True)


def box_opinions(index: pd.DataFrame, labels: pd.DataFrame, opinion: np.ndarray) -> pd.DataFrame:
    """Every labels.csv row with the model's (N, 9) opinion of its crop (``m0..m8``) and the
    crop_id; a box that was not cut (not kept by the consensus) has crop_id -1 and no
    opinion (NaN). Background crops are left out."""
    boxes = index[index["source"] == "box"]
    model = pd.DataFrame(opinion[boxes["crop_id"].to_numpy()], columns=[f"m{k}" for k in range(N_CLASSES)])
    model[["crop_id", "image_id", "line"]] = boxes[["crop_id", "image_id", "line"]].to_numpy()
    merged = labels.merge(model.astype({"line": labels["line"].dtype}), on=["image_id", "line"],
                          how="left", validate="1:1")
    return merged.assign(crop_id=merged["crop_id"].fillna(-1).astype(np.int64))


def second_pass(index: pd.DataFrame, labels: pd.DataFrame, opinion: np.ndarray, weight: float,
                relabel: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training targets per crop and the ranked review list.

    Args:
        index: the crop store's train index (crop_id, image_id, line, source, label, p0..p8).
        labels: labels.csv (votes, consensus label and posterior, agreement).
        opinion: (N, 9) out-of-fold model probabilities, row i = crop_id i.
        relabel: False keeps the consensus as the targets (the review list is made anyway).
    Returns:
        targets: crop_id, label, p0..p8 (one row per crop, in crop_id order);
        review: disputed boxes, most likely mislabelled first.
    """
    if not np.array_equal(index["crop_id"].to_numpy(), np.arange(len(index))):
        raise ValueError("the crop index must list crop_id 0..N-1 in order (re-run the crops stage)")
    boxes = box_opinions(index, labels, opinion)
    model = boxes[[f"m{k}" for k in range(N_CLASSES)]].to_numpy()
    cut = boxes["crop_id"].to_numpy() >= 0
    consensus = boxes[list(PROB_COLUMNS)].to_numpy()
    joint = consensus / consensus.sum(axis=1, keepdims=True)  # no crop, no opinion: the experts alone
    joint[cut] = combine(consensus[cut], model[cut], weight)
    joint = np.round(joint, 6)  # the same bytes on every CPU
    disputed = (boxes["agreement"].astype(str) != PATTERNS[0]).to_numpy()
    targets = consensus_targets(index)
    if relabel:
        change = disputed & cut
        rows = boxes.loc[change, "crop_id"].to_numpy()
        targets.loc[rows, "label"] = joint[change].argmax(axis=1)
        targets.loc[rows, list(PROB_COLUMNS)] = joint[change]
    label = boxes["label"].to_numpy()
    # chance the box's label is wrong: of its consensus label, or (no consensus) of the best guess
    right = np.where(label >= 0, joint[np.arange(len(label)), np.maximum(label, 0)], joint.max(axis=1))
    model_class = np.where(cut, np.nan_to_num(model, nan=0.0).argmax(axis=1), -1)
    review = pd.DataFrame({
        "image_id": boxes["image_id"], "line": boxes["line"],
        **{v: boxes[v] for v in VOTE_COLUMNS}, "agreement": boxes["agreement"].astype(str),
        "consensus": [CODES[k] if k >= 0 else "" for k in label],
        "confidence": boxes["confidence"],
        "model": [CODES[k] if k >= 0 else "" for k in model_class],
        "model_probability": np.round(np.where(cut, np.nan_to_num(model, nan=0.0).max(axis=1), np.nan), 6),
        "combined": [CODES[k] for k in joint.argmax(axis=1)],
        "gain": np.round(1 - right, 6),
        "crop_id": boxes["crop_id"],
    })[disputed]
    review = review.sort_values(["gain", "image_id", "line"], ascending=[False, True, True], kind="stable")
    return targets, review.reset_index(drop=True)


def target_scores(targets: pd.DataFrame, index: pd.DataFrame, labels: pd.DataFrame,
                  truth: pd.DataFrame) -> dict:
    """Accuracy of the training targets against the demo's truth (box crops with a truth row):
    all of them and those of disputed boxes, and how many targets differ from the consensus."""
    boxes = index[index["source"] == "box"][["crop_id", "image_id", "line", "label"]]
    merged = (boxes.merge(labels[["image_id", "line", "agreement"]], on=["image_id", "line"])
              .merge(truth, on=["image_id", "line"], how="inner"))
    rows = targets.set_index("crop_id").loc[merged["crop_id"]]
    target = rows["label"].to_numpy()
    confidence = rows[list(PROB_COLUMNS)].to_numpy().max(axis=1)
    correct = target == merged["truth"].to_numpy()
    disputed = (merged["agreement"].astype(str) != PATTERNS[0]).to_numpy()
    return {
        "boxes_scored": int(len(merged)),
        "targets_accuracy": round(float(correct.mean()), 5) if len(correct) else None,
        "targets_accuracy_disputed": round(float(correct[disputed].mean()), 5) if disputed.any() else None,
        "targets_calibration_error": calibration_error(confidence, correct),
        "targets_calibration_error_disputed": calibration_error(confidence[disputed], correct[disputed]),
        "consensus_accuracy": round(float((merged["label"].to_numpy() == merged["truth"].to_numpy()).mean()), 5)
        if len(merged) else None,
    }
