"""Tables and scores built from a consensus: labels.csv, disputed.csv, metrics.

``labels.csv`` holds one row per box (votes, consensus label, confidence, soft
label p0..p8, agreement pattern, keep); ``disputed.csv`` holds the boxes on
which the experts disagree, with the consensus label: the competition's
label-correction deliverable, keyed like the real one by
``idx = <image id>_<v1>_<v2>_<v3>_<v4>_<xmin px>_<ymin px>``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.config import to_dict
from springtail.common.decode import image_size
from springtail.common.policy import DataError, SkipLog
from springtail.common.votes import PATTERNS, agreement_patterns, strict_majority, vote_counts
from springtail.labels.annotations import VOTE_COLUMNS, read_train_annotations
from springtail.labels.consensus import (
    Consensus,
    ConsensusConfig,
    compare_methods,
    fleiss_kappa,
    run_consensus,
)


def votes_of(boxes: pd.DataFrame) -> np.ndarray:
    """(N, E) int votes of a box table."""
    return boxes[list(VOTE_COLUMNS)].to_numpy(dtype=np.int64)


def labels_table(boxes: pd.DataFrame, result: Consensus) -> pd.DataFrame:
    """The box table plus label, confidence, p0..p8, agreement and keep columns."""
    labels = boxes.reset_index(drop=True).copy()
    labels["label"] = result.label.astype(np.int64)
    labels["confidence"] = result.confidence
    for k, column in enumerate(PROB_COLUMNS):
        labels[column] = result.proba[:, k]
    labels["agreement"] = agreement_patterns(votes_of(boxes))
    labels["keep"] = result.keep.astype(bool)
    return labels.sort_values(["image_id", "line"], kind="stable").reset_index(drop=True)


def competition_idx(row: pd.Series, width: int, height: int) -> str:
    """The real label-correction key; pixel corners are truncated as in the real file."""
    votes = "_".join(str(int(row[c])) for c in VOTE_COLUMNS)
    xmin = int((row["xc"] - row["w"] / 2) * width)
    ymin = int((row["yc"] - row["h"] / 2) * height)
    return f"{row['image_id']}_{votes}_{xmin}_{ymin}"


def disputed_table(labels: pd.DataFrame, sizes: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Boxes whose experts disagree, with the consensus label (id and code).

    Args:
        labels: the table of :func:`labels_table`.
        sizes: image_id -> (width, height) in pixels, for the ``idx`` key; images
            missing here get an empty ``idx``.
    """
    disputed = labels[labels["agreement"] != "4"]
    table = disputed[["image_id", "line", *VOTE_COLUMNS, "agreement", "label"]].copy()
    table.insert(0, "idx", [
        competition_idx(row, *sizes[row["image_id"]]) if row["image_id"] in sizes else ""
        for _, row in disputed.iterrows()
    ])
    table["code"] = [CODES[k] if k >= 0 else "" for k in disputed["label"]]
    table["confidence"] = disputed["confidence"].round(6)
    return table.reset_index(drop=True)


def _ds_details(result: Consensus) -> dict:
    info = result.info
    return {"iterations": info["iterations"], "converged": info["converged"],
            "log_likelihood": round(info["log_likelihood"], 4),
            "class_priors": dict(zip(CODES, np.round(info["priors"], 5).tolist())),
            **({"temperature": info["temperature"],
                "held_out_nll_per_vote": {str(t): v for t, v in info["held_out_nll"].items()}}
               if "temperature" in info else {})}


def summarize(boxes: pd.DataFrame, result: Consensus, config: ConsensusConfig) -> dict:
    """Metrics of one consensus: counts, agreement, expert accuracies, kappa."""
    votes = votes_of(boxes)
    patterns = Counter(agreement_patterns(votes))
    strict = strict_majority(votes)
    has_strict = strict >= 0
    labelled = result.label >= 0
    summary = {
        "method": config.method,
        "boxes_in": int(len(boxes)),
        "boxes_kept": int(result.keep.sum()),
        "boxes_labelled": int(labelled.sum()),
        "boxes_disputed": int(len(boxes) - patterns.get("4", 0)),
        "agreement": {p: int(patterns.get(p, 0)) for p in PATTERNS},
        "expert_accuracy": {c: round(float(a), 5)
                            for c, a in zip(VOTE_COLUMNS, result.expert_accuracy)},
        "fleiss_kappa": round(fleiss_kappa(vote_counts(votes)), 5),
        "label_counts": {CODES[k]: int((result.label[result.keep] == k).sum())
                         for k in range(N_CLASSES)},
        "differs_from_strict_majority": int((result.label[has_strict] != strict[has_strict]).sum()),
        "labels_without_strict_majority": int((labelled & ~has_strict).sum()),
    }
    if config.method.startswith("dawid_skene"):
        summary["dawid_skene"] = _ds_details(result)
    return summary


def _accuracy(label: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float | None:
    return round(float((label[mask] == truth[mask]).mean()), 5) if mask.any() else None


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float | None:
    """Expected calibration error: over ``bins`` equal-width confidence bins, the
    box-weighted mean of |accuracy - mean confidence| (0 = confidence is honest)."""
    if not len(confidence):
        return None
    which = np.clip((np.asarray(confidence) * bins).astype(int), 0, bins - 1)
    error = 0.0
    for b in np.unique(which):
        inside = which == b
        error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return round(float(error), 5)


def truth_scores(boxes: pd.DataFrame, truth: pd.DataFrame, config: ConsensusConfig) -> dict:
    """Accuracy against the synthetic truth of the chosen and of every method.

    ``truth`` (columns image_id, line, truth) is used only here, for scoring; an
    unlabelled box (-1) counts as wrong in the accuracy over all boxes. The scores are
    an extra: boxes without a truth row (e.g. images added after the answers were
    written) are left out of them and counted in ``boxes_without_truth``.
    """
    merged = boxes[["image_id", "line"]].merge(
        truth[["image_id", "line", "truth"]], on=["image_id", "line"], how="left", validate="1:1")
    known = merged["truth"].notna().to_numpy()
    y = merged.loc[known, "truth"].to_numpy(dtype=np.int64)
    all_votes = votes_of(boxes)
    votes = all_votes[known]
    disputed = np.array([p != "4" for p in agreement_patterns(votes)], dtype=bool)
    every = np.ones(len(y), dtype=bool)
    methods = {}
    for name, fitted in compare_methods(all_votes, config).items():  # fitted on every box, as labelled
        result = dataclasses.replace(fitted, label=fitted.label[known], confidence=fitted.confidence[known],
                                     keep=fitted.keep[known])
        methods[name] = {
            "kept": _accuracy(result.label, y, result.keep),
            "all": _accuracy(result.label, y, every),
            "disputed": _accuracy(result.label, y, disputed),
            "disputed_mean_confidence": round(float(result.confidence[disputed].mean()), 5)
            if disputed.any() else None,  # vs "disputed": calibration of the soft labels
            "calibration_error": calibration_error(result.confidence, result.label == y),
            "calibration_error_disputed": calibration_error(result.confidence[disputed],
                                                            (result.label == y)[disputed]),
            "boxes_kept": int(result.keep.sum()),
        }
    return {
        "boxes_without_truth": int((~known).sum()),
        "truth_accuracy": {k: methods[config.method][k] for k in ("kept", "all", "disputed")},
        "truth_calibration_error": {k: methods[config.method][k]
                                    for k in ("calibration_error", "calibration_error_disputed")},
        "truth_accuracy_by_method": methods,
        "truth_expert_accuracy": {c: round(float(a), 5)
                                  for c, a in zip(VOTE_COLUMNS, (votes == y[:, None]).mean(0))},
    }


def build_labels(boxes: pd.DataFrame, config: ConsensusConfig) -> tuple[pd.DataFrame, dict]:
    """Run the configured consensus on a box table; return labels.csv's table and metrics."""
    result = run_consensus(votes_of(boxes), config)
    return labels_table(boxes, result), summarize(boxes, result, config)


def image_sizes(train_dir: Path, image_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Header sizes of the images that exist (for the disputed boxes' pixel keys)."""
    sizes = {}
    for image_id in image_ids:
        try:
            sizes[image_id] = image_size(train_dir / f"{image_id}.jpg")
        except DataError:  # no image, no pixel key: the crops stage judges images
            pass
    return sizes


def label_raw(raw_dir: Path, config: ConsensusConfig, log: SkipLog) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The consensus stage on a raw layout: every ``train/*.txt`` -> (labels, disputed, metrics).

    ``train_truth.csv``, present only in synthetic data, is read to score the methods,
    never to label. Bad annotation lines go to ``log`` (the ``data.on_error`` policy).
    """
    raw_dir = Path(raw_dir)
    boxes, files = read_train_annotations(raw_dir, log)
    labels, metrics = build_labels(boxes, config)
    truth_path = raw_dir / "train_truth.csv"
    if truth_path.exists():
        truth = pd.read_csv(truth_path, dtype={"image_id": str})
        metrics.update(truth_scores(boxes, truth, config))
    metrics.update({"files": files, "skipped": log.to_dict(), "config": to_dict(config)})
    disputed_ids = sorted(set(labels.loc[labels["agreement"] != "4", "image_id"]))
    disputed = disputed_table(labels, image_sizes(raw_dir / "train", disputed_ids))
    return labels, disputed, metrics
