"""Combining the models' class probabilities: per-class-F1 weights, mean, or stacking.

Combiners follow the scikit-learn contract on stacked probabilities ``P`` of
shape (M models, N crops, 9 classes): ``fit(P, y)`` returns self,
``predict_proba(P)`` gives (N, 9). They are fitted on validation predictions
only. The ensemble's own validation score is nested out-of-fold: the validation
crops are split into inner folds grouped by source image, and each fold is
predicted by members chosen and weights fitted on the other folds only, so no
crop is scored by a choice it helped make. Members are chosen by greedy forward
selection on the out-of-fold score (a member that would lower it is left out),
and each member's leave-one-out effect on it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.f1 import macro_f1, per_class_f1
from springtail.common.store import prediction_table


def _normalise(probs: np.ndarray) -> np.ndarray:
    """Rows summing to 1; an all-zero row becomes uniform."""
    total = probs.sum(axis=1, keepdims=True)
    return np.where(total > 0, probs / np.where(total > 0, total, 1), 1 / N_CLASSES)


class MeanEnsemble:
    """The plain average of the models' probabilities (nothing to fit)."""

    def fit(self, P: np.ndarray, y: np.ndarray) -> MeanEnsemble:
        self.weights_ = np.full((P.shape[0], N_CLASSES), 1 / P.shape[0])  # (M, 9)
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        return _normalise(np.einsum("mc,mnc->nc", self.weights_, np.ascontiguousarray(P)))

    def describe(self, models: list[str]) -> dict[str, Any]:
        return {"weights": {m: dict(zip(CODES, map(float, w))) for m, w in zip(models, self.weights_)}}


class PerClassF1Ensemble(MeanEnsemble):
    """Model m's probability for class c weighted by its validation F1 on class c.

    W[m, c] = F1[m, c] / sum over models of F1[., c] (uniform when every model
    scores 0 on c); the weighted sum is then renormalised per row.
    """

    def fit(self, P: np.ndarray, y: np.ndarray) -> PerClassF1Ensemble:
        f1 = np.stack([per_class_f1(y, p.argmax(axis=1)) for p in P])  # (M, 9)
        total = f1.sum(axis=0, keepdims=True)
        self.f1_ = f1
        self.weights_ = np.where(total > 0, f1 / np.where(total > 0, total, 1), 1 / P.shape[0])
        return self


class StackingEnsemble:
    """Multinomial logistic regression on the concatenated probabilities (M * 9 features)."""

    def __init__(self, C: float = 1.0, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    @staticmethod
    def _features(P: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(P.transpose(1, 0, 2).reshape(P.shape[1], -1))  # (N, M * 9), model-major

    def fit(self, P: np.ndarray, y: np.ndarray) -> StackingEnsemble:
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:  # one class seen: predict it
            self.model_ = None
            return self
        self.model_ = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        self.model_.fit(self._features(P), y)
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        out = np.zeros((P.shape[1], N_CLASSES))
        if self.model_ is None:
            out[:, self.classes_[0]] = 1.0
        else:  # classes absent from the fitting crops get probability 0
            out[:, self.model_.classes_] = self.model_.predict_proba(self._features(P))
        return out

    def describe(self, models: list[str]) -> dict[str, Any]:
        features = [f"{m}:{c}" for m in models for c in PROB_COLUMNS]
        if self.model_ is None:
            return {"constant_class": int(self.classes_[0]), "features": features}
        return {"classes": self.model_.classes_.tolist(), "features": features,
                "coef": self.model_.coef_.tolist(), "intercept": self.model_.intercept_.tolist()}


METHODS = {"per_class_f1": PerClassF1Ensemble, "mean": MeanEnsemble, "stacking": StackingEnsemble}


@dataclass(frozen=True)
class EnsembleConfig:
    """The ``ensemble`` section of params.yaml."""

    method: str  # per_class_f1 | mean | stacking
    inner_folds: int  # out-of-fold splits of the validation crops, for an honest score
    seed: int
    select: bool  # greedy forward selection of members on the out-of-fold macro F1

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"ensemble.method '{self.method}' unknown; "
                             f"known: {', '.join(METHODS)}")
        if self.inner_folds < 2:
            raise ValueError(f"ensemble.inner_folds must be >= 2, got {self.inner_folds}")

    def combiner(self):
        if self.method == "stacking":
            return StackingEnsemble(random_state=self.seed)
        return METHODS[self.method]()


def inner_splits(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of the validation crops grouped by source image (stratified where possible).

    Raises:
        ValueError: fewer images than folds.
    """
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f"the validation crops come from {n_groups} images, fewer than "
                         f"ensemble.inner_folds = {n_splits}; lower it")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def out_of_fold(make, P: np.ndarray, y: np.ndarray, splits) -> np.ndarray:
    """(N, 9) probabilities where each inner fold is predicted by a combiner ``make()``
    fitted on the other folds only."""
    oof = np.full((P.shape[1], N_CLASSES), np.nan)
    for fit_rows, held_out in splits:
        oof[held_out] = make().fit(P[:, fit_rows], y[fit_rows]).predict_proba(P[:, held_out])
    if np.isnan(oof).any():
        raise ValueError("inner folds do not cover every validation crop")
    return oof


def _align(tables: dict[str, pd.DataFrame], key: str, kind: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of every model's table in one order (the first model's, sorted by ``key``);
    returns (the key columns, probabilities (M, N, 9)). Raises if the models disagree."""
    names = list(tables)
    if not names:
        raise ValueError("no models to ensemble: the `models` param is empty")
    first = tables[names[0]].sort_values(key, kind="stable").reset_index(drop=True)
    ids = first[key].astype(str)
    stacked = []
    for name, table in tables.items():
        table = table.assign(**{key: table[key].astype(str)}).set_index(key)
        if table.index.duplicated().any() or set(table.index) != set(ids):
            raise ValueError(f"{name}/{kind}.csv: its {key} values differ from {names[0]}/{kind}.csv "
                             f"(predictions from different crops or folds?)")
        stacked.append(table.loc[ids, list(PROB_COLUMNS)].to_numpy(dtype=float))
    # C order: numpy's sums depend on the memory layout in the last bit, and the
    # springtail-identify command must give exactly what this stage gives.
    return first.drop(columns=list(PROB_COLUMNS)), np.ascontiguousarray(np.stack(stacked))


def oof_score(config: EnsembleConfig, P: np.ndarray, y: np.ndarray, splits) -> float:
    """Out-of-fold macro F1 of the combiner over the members stacked in ``P`` (M, N, 9)."""
    return macro_f1(y, out_of_fold(config.combiner, P, y, splits).argmax(axis=1))


def forward_select(config: EnsembleConfig, P: np.ndarray, y: np.ndarray, splits) -> list[int]:
    """Members (indices into P) chosen greedily: start from the best single member by
    out-of-fold score, add the member that raises it most, stop when none raises it.

    A member that would lower the ensemble's out-of-fold macro F1 is left out."""
    scores = [oof_score(config, P[[m]], y, splits) for m in range(len(P))]
    chosen, best = [int(np.argmax(scores))], max(scores)
    while len(chosen) < len(P):
        trials = {m: oof_score(config, P[chosen + [m]], y, splits) for m in range(len(P)) if m not in chosen}
        m = max(trials, key=trials.get)
        if trials[m] <= best:
            break
        chosen, best = chosen + [m], trials[m]
    return sorted(chosen)


def nested_out_of_fold(config: EnsembleConfig, P: np.ndarray, y: np.ndarray, groups: np.ndarray,
                       splits) -> np.ndarray:
    """(N, 9) probabilities where each inner fold is predicted by the members that forward
    selection chose on the other folds (with their own inner splits) and a combiner fitted
    there: the selection never sees the crops it is scored on. Without ``config.select``,
    plain :func:`out_of_fold` over every member."""
    if not config.select:
        return out_of_fold(config.combiner, P, y, splits)
    oof = np.full((P.shape[1], N_CLASSES), np.nan)
    for fit_rows, held_out in splits:
        inner = inner_splits(y[fit_rows], groups[fit_rows], config.inner_folds, config.seed)
        chosen = forward_select(config, P[:, fit_rows], y[fit_rows], inner)
        oof[held_out] = config.combiner().fit(P[chosen][:, fit_rows], y[fit_rows]).predict_proba(P[chosen][:, held_out])
    return oof


def leave_one_out(config: EnsembleConfig, P: np.ndarray, y: np.ndarray, splits, models: list[str]) -> dict[str, float]:
    """For each member, the out-of-fold macro F1 of all members minus that of all but it
    (> 0: the member helps)."""
    full = oof_score(config, P, y, splits)
    if len(P) < 2:
        return {models[0]: full}
    return {m: full - oof_score(config, np.delete(P, i, axis=0), y, splits) for i, m in enumerate(models)}


def final_combiner(vals: dict[str, pd.DataFrame], config: EnsembleConfig):
    """The combiner the ensemble stage applies to the test crops: fitted on all validation
    predictions of the members in ``vals`` (model -> val.csv table), in their order."""
    val_keys, P_val = _align(vals, "crop_id", "val")
    return config.combiner().fit(P_val, val_keys["label"].to_numpy(dtype=int))


@dataclass
class EnsembleResult:
    val: pd.DataFrame  # crop_id, image_id, label, p0..p8: out-of-fold ensemble probabilities
    test: pd.DataFrame  # idx, p0..p8: combiner fitted on all validation crops
    report: dict[str, Any]  # weights.json


def build_ensemble(vals: dict[str, pd.DataFrame], tests: dict[str, pd.DataFrame],
                   config: EnsembleConfig) -> EnsembleResult:
    """Fit the combiner on the validation predictions of ``vals`` (model -> val.csv table) and
    apply it to ``tests`` (model -> test.csv table); score it out of fold.

    Raises:
        ValueError: models predicted different crops, or too few images for the inner folds.
    """
    val_keys, P_val = _align(vals, "crop_id", "val")
    test_keys, P_test = _align(tests, "idx", "test")
    y = val_keys["label"].to_numpy(dtype=int)
    groups = val_keys["image_id"].astype(str).to_numpy()
    splits = inner_splits(y, groups, config.inner_folds, config.seed)
    models = list(vals)
    chosen = forward_select(config, P_val, y, splits) if config.select else list(range(len(models)))
    oof = nested_out_of_fold(config, P_val, y, groups, splits)
    final = final_combiner({models[i]: vals[models[i]] for i in chosen}, config)
    report = {"method": config.method, "models": models, "selected": [models[i] for i in chosen],
              "inner_folds": config.inner_folds, **final.describe([models[i] for i in chosen]),
              "model_val_macro_f1": {m: macro_f1(y, p.argmax(axis=1)) for m, p in zip(models, P_val)},
              "leave_one_out": leave_one_out(config, P_val, y, splits, models),
              "selection_val_macro_f1": oof_score(config, P_val[chosen], y, splits),
              "oof_val_macro_f1": macro_f1(y, oof.argmax(axis=1))}
    val_keys = val_keys.assign(crop_id=val_keys["crop_id"].astype(int))
    return EnsembleResult(prediction_table(val_keys, oof),
                          prediction_table(test_keys, final.predict_proba(P_test[chosen])), report)
