"""The ensemble's combiners: per-class-F1 weights, mean, or stacking, saved as data.

Each follows the estimator contract of the members: nothing happens in ``__init__``,
``fit(P, y)`` returns self, learned state ends in ``_`` (``classes_`` included) and
``predict_proba(P)`` gives (N, 9) columns in ``classes_`` order, where ``P`` holds the
members' stacked probabilities, shape (M models, N crops, 9 classes). ``save(path)``
writes the fitted state as JSON (never pickle) and :func:`load_combiner` reads it back
into a combiner whose ``predict_proba`` is bit-identical: JSON keeps every float64 exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.f1 import per_class_f1
from springtail.common.io import read_json, write_json

FORMAT = 1  # version of the saved combiner's layout; a reader refuses any other


def _normalise(probs: np.ndarray) -> np.ndarray:
    """Rows summing to 1; an all-zero row becomes uniform."""
    total = probs.sum(axis=1, keepdims=True)
    return np.where(total > 0, probs / np.where(total > 0, total, 1), 1 / N_CLASSES)


class Combiner:
    """What every combiner shares: the members it was fitted on, checks and save."""

    method = ""

    def _check(self, P: np.ndarray) -> None:
        if not hasattr(self, "classes_"):
            raise ValueError(f"{type(self).__name__}: not fitted (call fit or load_combiner)")
        if P.ndim != 3 or P.shape[0] != self.n_members_ or P.shape[2] != N_CLASSES:
            raise ValueError(f"{self.method} combiner fitted on {self.n_members_} members x {N_CLASSES} "
                             f"classes, given probabilities of shape {P.shape}")

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, path: str | Path, members: list[str]) -> None:
        """Write the fitted state with the names of the members, in the order of ``P``."""
        if len(members) != self.n_members_:
            raise ValueError(f"{len(members)} member names for a combiner of {self.n_members_}")
        write_json(path, {"format": FORMAT, "method": self.method, "members": list(members),
                          "classes": self.classes_.tolist(), **self.state()})


class MeanEnsemble(Combiner):
    """The plain average of the models' probabilities (nothing learned but the member count)."""

    method = "mean"

    def fit(self, P: np.ndarray, y: np.ndarray) -> MeanEnsemble:
        self.classes_ = np.arange(N_CLASSES)
        self.n_members_ = P.shape[0]
        self.weights_ = np.full((P.shape[0], N_CLASSES), 1 / P.shape[0])  # (M, 9)
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        self._check(P)
        return _normalise(np.einsum("mc,mnc->nc", self.weights_, np.ascontiguousarray(P)))

    def describe(self, models: list[str]) -> dict[str, Any]:
        return {"weights": {m: dict(zip(CODES, map(float, w))) for m, w in zip(models, self.weights_)}}

    def state(self) -> dict[str, Any]:
        return {"weights": self.weights_.tolist()}

    def restore(self, state: dict[str, Any]) -> MeanEnsemble:
        self.weights_ = np.array(state["weights"], dtype=np.float64)
        self.n_members_ = len(self.weights_)
        if self.weights_.shape != (self.n_members_, N_CLASSES):
            raise ValueError(f"weights of shape {self.weights_.shape}, expected (members, {N_CLASSES})")
        return self


class PerClassF1Ensemble(MeanEnsemble):
    """Model m's probability for class c weighted by its validation F1 on class c.

    W[m, c] = F1[m, c] / sum over models of F1[., c] (uniform when every model
    scores 0 on c); the weighted sum is then renormalised per row.
    """

    method = "per_class_f1"

    def fit(self, P: np.ndarray, y: np.ndarray) -> PerClassF1Ensemble:
        super().fit(P, y)
        f1 = np.stack([per_class_f1(y, p.argmax(axis=1)) for p in P])  # (M, 9)
        total = f1.sum(axis=0, keepdims=True)
        self.f1_ = f1
        self.weights_ = np.where(total > 0, f1 / np.where(total > 0, total, 1), 1 / P.shape[0])
        return self


class StackingEnsemble(Combiner):
    """Multinomial logistic regression on the concatenated probabilities (M * 9 features)."""

    method = "stacking"

    def __init__(self, C: float = 1.0, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    @staticmethod
    def _features(P: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(P.transpose(1, 0, 2).reshape(P.shape[1], -1))  # (N, M * 9), model-major

    def fit(self, P: np.ndarray, y: np.ndarray) -> StackingEnsemble:
        self.classes_ = np.arange(N_CLASSES)
        self.n_members_ = P.shape[0]
        self.seen_ = np.unique(y)  # classes absent from the fitting crops get probability 0
        if len(self.seen_) < 2:  # one class seen: predict it
            self.model_ = None
            return self
        self.model_ = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        self.model_.fit(self._features(P), y)
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        self._check(P)
        out = np.zeros((P.shape[1], N_CLASSES))
        if self.model_ is None:
            out[:, self.seen_[0]] = 1.0
        else:
            out[:, self.model_.classes_] = self.model_.predict_proba(self._features(P))
        return out

    def describe(self, models: list[str]) -> dict[str, Any]:
        features = [f"{m}:{c}" for m in models for c in PROB_COLUMNS]
        if self.model_ is None:
            return {"constant_class": int(self.seen_[0]), "features": features}
        return {"classes": self.model_.classes_.tolist(), "features": features,
                "coef": self.model_.coef_.tolist(), "intercept": self.model_.intercept_.tolist()}

    def state(self) -> dict[str, Any]:
        state = {"C": self.C, "random_state": self.random_state, "n_members": self.n_members_,
                 "seen": self.seen_.tolist()}
        if self.model_ is not None:
            state |= {"coef": self.model_.coef_.tolist(), "intercept": self.model_.intercept_.tolist()}
        return state

    def restore(self, state: dict[str, Any]) -> StackingEnsemble:
        self.C, self.random_state = float(state["C"]), int(state["random_state"])
        self.n_members_, self.seen_ = int(state["n_members"]), np.array(state["seen"], dtype=np.int64)
        self.model_ = None
        if "coef" in state:  # the fitted regression's attributes, as sklearn's predict_proba reads them
            model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
            model.classes_ = self.seen_
            # sklearn's solver leaves coef_ in Fortran order; the same order gives the same
            # floating-point sums in predict_proba, to the last bit
            model.coef_ = np.asfortranarray(np.array(state["coef"], dtype=np.float64))
            model.intercept_ = np.array(state["intercept"], dtype=np.float64)
            model.n_features_in_ = model.coef_.shape[1]
            if model.n_features_in_ != self.n_members_ * N_CLASSES:
                raise ValueError(f"coef has {model.n_features_in_} features, expected "
                                 f"{self.n_members_} members x {N_CLASSES}")
            self.model_ = model
        return self


METHODS = {"per_class_f1": PerClassF1Ensemble, "mean": MeanEnsemble, "stacking": StackingEnsemble}


def load_combiner(path: str | Path) -> tuple[Combiner, list[str]]:
    """The fitted combiner saved at ``path`` and its members' names, in the order of ``P``.

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: naming ``path``, when it is not a saved combiner of this version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (run `dvc repro ensemble` or `dvc pull`)")
    try:
        saved = read_json(path)
        if saved.get("format") != FORMAT:
            raise ValueError(f"format {saved.get('format')!r}, this code reads format {FORMAT}")
        if saved["method"] not in METHODS:
            raise ValueError(f"unknown method {saved['method']!r}; known: {', '.join(METHODS)}")
        if saved["classes"] != list(range(N_CLASSES)):
            raise ValueError(f"classes {saved['classes']}, expected 0..{N_CLASSES - 1}")
        combiner = METHODS[saved["method"]]().restore(saved)
        combiner.classes_ = np.arange(N_CLASSES)
        members = [str(m) for m in saved["members"]]
        if len(members) != combiner.n_members_:
            raise ValueError(f"{len(members)} members named, the combiner was fitted on {combiner.n_members_}")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: not a saved combiner ({err})") from None
    return combiner, members
