"""The review stage: out-of-fold opinions, second-pass targets, the review list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.store import read_targets
from springtail.models.training import fit_inputs
from springtail.review import opinion as opinion_module
from springtail.review.opinion import FLOOR, out_of_fold
from springtail.review.second_pass import combine, second_pass, target_scores


def blobs(n_per_class: int = 30, dim: int = 6, seed: int = 0):
    """Separable features: class k sits around 3 * e_k."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), n_per_class)
    centres = np.zeros((N_CLASSES, max(dim, N_CLASSES)))
    centres[np.arange(N_CLASSES), np.arange(N_CLASSES)] = 3.0
    features = centres[labels] + rng.normal(0, 0.5, (len(labels), centres.shape[1]))
    folds = np.tile(np.arange(5), len(labels) // 5 + 1)[:len(labels)]
    return features, labels, folds


def test_out_of_fold_never_fits_on_the_crop_itself_nor_on_the_validation_fold(monkeypatch):
    features, labels, folds = blobs()
    fitted_on = []
    real = opinion_module.fit_predict

    def spy(features_, labels_, train, test, inverse_l2):
        fitted_on.append((train.copy(), test.copy()))
        return real(features_, labels_, train, test, inverse_l2)

    monkeypatch.setattr(opinion_module, "fit_predict", spy)
    probs = out_of_fold(features, labels, folds, val_fold=0, inverse_l2=1.0)
    assert len(fitted_on) == 5  # four training folds, then the validation fold
    for train, test in fitted_on:
        assert not (train & test).any() and not train[folds == 0].any()
    assert np.allclose(probs.sum(axis=1), 1) and (probs >= FLOOR / 2).all()
    assert (probs.argmax(axis=1) == labels).mean() > 0.95  # separable: the model learns it


def test_out_of_fold_needs_two_training_folds():
    features, labels, _ = blobs(5)
    with pytest.raises(ValueError, match="2 training folds"):
        out_of_fold(features, labels, np.arange(len(labels)) % 2, val_fold=0, inverse_l2=1.0)


def store_and_labels():
    """A crop index of 4 box crops + 1 background crop and their labels.csv rows."""
    labels = pd.DataFrame({
        "image_id": ["a", "a", "b", "c"], "line": [1, 2, 1, 1],
        "v1": [1, 1, 2, 3], "v2": [1, 1, 2, 3], "v3": [1, 4, 5, 3], "v4": [1, 4, 5, 3],
        "label": [1, 1, 2, 3], "confidence": [1.0, 0.55, 0.6, 1.0],
        "agreement": ["4", "2-2", "2-2", "4"], "keep": True,
    })
    posterior = np.zeros((4, N_CLASSES))
    posterior[0, 1] = posterior[3, 3] = 1.0
    posterior[1, [1, 4]] = [0.55, 0.45]
    posterior[2, [2, 5]] = [0.6, 0.4]
    labels[list(PROB_COLUMNS)] = posterior
    index = pd.DataFrame({"crop_id": range(5), "image_id": ["a", "a", "b", "c", "d"], "line": [1, 2, 1, 1, 0],
                          "source": ["box"] * 4 + ["background"], "label": [1, 1, 2, 3, 8], "fold": [1, 2, 3, 4, 1]})
    index[list(PROB_COLUMNS)] = np.vstack([posterior, np.eye(N_CLASSES)[8]])
    model = np.full((5, N_CLASSES), 0.01)
    model[[0, 1, 2, 3, 4], [4, 4, 2, 4, 8]] = 0.92  # sure of class 4 on boxes 0, 1 and 3
    return index, labels, model / model.sum(axis=1, keepdims=True)


def test_second_pass_changes_only_disputed_boxes_and_ranks_them():
    index, labels, model = store_and_labels()
    kept, review = second_pass(index, labels, model, weight=1.0, relabel=False)
    assert kept["label"].tolist() == index["label"].tolist()  # relabel off: the consensus
    targets, review2 = second_pass(index, labels, model, weight=1.0, relabel=True)
    assert targets["label"].tolist() == [1, 4, 2, 3, 8]  # unanimous boxes 0 and 3 stand
    assert np.allclose(targets[list(PROB_COLUMNS)].sum(axis=1), 1)
    assert review.equals(review2)
    assert review["line"].tolist() == [2, 1] and review["image_id"].tolist() == ["a", "b"]
    assert review.loc[0, "consensus"] == CODES[1] and review.loc[0, "combined"] == CODES[4]
    assert review["gain"].is_monotonic_decreasing and review.loc[0, "gain"] > 0.5 > review.loc[1, "gain"]


def test_combine_is_a_product_of_experts():
    consensus = np.array([[0.5, 0.5] + [0.0] * 7])
    model = np.array([[0.2, 0.8] + [0.0] * 7])
    joint = combine(consensus, model, weight=1.0)
    assert joint[0, 1] / joint[0, 0] == pytest.approx(4.0, rel=1e-3)
    assert np.allclose(combine(consensus, model, weight=0.0)[0, :2], [0.5, 0.5], atol=1e-3)


def test_target_scores_count_disputed_boxes_apart():
    index, labels, model = store_and_labels()
    targets, _ = second_pass(index, labels, model, weight=1.0, relabel=True)
    truth = pd.DataFrame({"image_id": ["a", "a", "b", "c"], "line": [1, 2, 1, 1], "truth": [1, 4, 5, 3]})
    scores = target_scores(targets, index, labels, truth)
    assert scores["targets_accuracy"] == 0.75 and scores["targets_accuracy_disputed"] == 0.5
    assert scores["consensus_accuracy"] == 0.5


def test_training_reads_the_targets_and_validates_on_the_consensus(tmp_path):
    index, labels, model = store_and_labels()
    targets, _ = second_pass(index, labels, model, weight=1.0, relabel=True)
    path = tmp_path / "targets.csv"
    targets.to_csv(path, index=False)
    images = np.zeros((5, 8, 8, 3), np.uint8)
    inputs = fit_inputs(images, index.assign(fold=[1, 2, 1, 1, 2]), 1, read_targets(path))
    assert inputs["y"].tolist() == [4, 8]  # crops 1 and 4: the second-pass label of box 1
    assert inputs["eval_set"][1].tolist() == [1, 2, 3]  # validation: consensus labels
    with pytest.raises(ValueError, match="targets.csv: its crop_id column"):
        fit_inputs(images, index, 1, read_targets(path).iloc[::-1])
    targets.drop(columns=["p3"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"targets.csv: missing column\(s\) p3"):
        read_targets(path)


def test_boxes_without_a_crop_are_reviewed_on_the_votes_alone():
    """A filter policy (unanimous) cuts no disputed box: the list still ranks them."""
    index, labels, model = store_and_labels()
    extra = labels.iloc[[1]].assign(image_id="z", line=7, label=-1, confidence=0.5)
    extra[list(PROB_COLUMNS)] = 0.0
    extra[["p1", "p4"]] = 0.5  # a 2-2 split, no consensus label
    targets, review = second_pass(index, pd.concat([labels, extra], ignore_index=True), model, 1.0, True)
    assert len(targets) == len(index)
    row = review.set_index("image_id").loc["z"]
    assert row["crop_id"] == -1 and row["model"] == "" and row["consensus"] == ""
    assert row["gain"] == pytest.approx(0.5) and np.isnan(row["model_probability"])
