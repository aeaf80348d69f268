"""CNN embeddings -> XGBoost, behind the same scikit-learn contract as the networks.

With pretrained weights the CNN is frozen and only gives features; without, it
is first fine-tuned for ``finetune_epochs`` with the shared training loop. The
gradient-boosted trees are then fit on the penultimate (pooled) features of the
training crops, with early stopping on the validation crops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xgboost as xgb
from sklearn.base import BaseEstimator

from springtail.common.classes import N_CLASSES
from springtail.common.config import from_section, to_dict
from springtail.common.f1 import macro_f1
from springtail.common.io import atomic_path, write_yaml
from springtail.models import checkpoint
from springtail.models.precision import check_precision
from springtail.models.timm_net import NetConfig, TimmClassifier
from springtail.models.training import TrainConfig, inverse_frequency

BOOSTER = "model.ubj"  # XGBoost's native binary JSON


@dataclass(frozen=True)
class CnnXgbConfig:
    """The ``cnn_xgb`` section of params.yaml."""

    arch: str  # CNN that gives the embeddings
    pretrained: bool | str  # with weights: frozen features; without: fine-tuned first
    precision: str | None  # auto | fp32 | bf16; null = train.precision
    finetune_epochs: int  # epochs of the shared training loop before the trees
    n_estimators: int  # boosting rounds at most
    max_depth: int
    max_bin: int  # histogram bins per feature (split candidates): few crops, many features
    learning_rate: float
    subsample: float  # row subsampling per tree
    early_stopping_rounds: int  # rounds without a better val log-loss before stopping

    def __post_init__(self) -> None:
        check_precision(self.precision, nullable=True)


def expand_soft(features: np.ndarray, labels: np.ndarray, soft: np.ndarray | None,
                min_mass: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft labels for trees: one weighted row per (crop, class) with mass >= ``min_mass``.

    Returns (features (M, D), labels (M,), weights (M,)); hard labels give weight 1.
    """
    if soft is None:
        return features, np.asarray(labels, dtype=int), np.ones(len(labels))
    rows, cls = np.nonzero(np.asarray(soft) >= min_mass)
    return features[rows], cls, np.asarray(soft)[rows, cls]


def balance(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Multiply sample weights by inverse class frequency (mean weight stays 1)."""
    factor = inverse_frequency(np.bincount(labels, weights=weights, minlength=N_CLASSES))
    return weights * factor[labels]


def fit_booster(features: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                val: tuple[np.ndarray, np.ndarray] | None, config: CnnXgbConfig,
                seed: int, nthread: int) -> tuple[xgb.Booster, dict[str, list[float]]]:
    """Multiclass softprob trees; with ``val``, stop early on its log-loss and keep the best
    number of rounds only (the booster is sliced, so a reload predicts the same).

    Returns the booster and the log-loss per round ({"train_mlogloss": [...], "val_mlogloss": [...]}).
    """
    params = {"objective": "multi:softprob", "num_class": N_CLASSES, "max_depth": config.max_depth,
              "max_bin": config.max_bin,
              "eta": config.learning_rate, "subsample": config.subsample, "tree_method": "hist",
              "eval_metric": "mlogloss", "seed": seed, "nthread": nthread}
    train = xgb.DMatrix(features, label=labels, weight=weights, nthread=nthread)
    evals = [(train, "train")]  # early stopping watches the last one: val
    if val is not None:
        evals.append((xgb.DMatrix(val[0], label=val[1], nthread=nthread), "val"))
    history: dict = {}
    booster = xgb.train(params, train, num_boost_round=config.n_estimators, evals=evals,
                        early_stopping_rounds=config.early_stopping_rounds if val is not None else None,
                        evals_result=history, verbose_eval=False)
    if val is not None and booster.best_iteration + 1 < booster.num_boosted_rounds():
        booster = booster[: booster.best_iteration + 1]
    return booster, {f"{name}_mlogloss": values["mlogloss"] for name, values in history.items()}


class CnnXgbClassifier(BaseEstimator):
    """Frozen or fine-tuned timm CNN features, classified by XGBoost.

    Learned state: ``cnn_`` (a fitted TimmClassifier), ``booster_``, ``classes_``,
    ``fit_seconds_`` and ``val_macro_f1_`` (of the trees on the validation crops).
    """

    kind = "cnn_xgb"

    def __init__(self, config: CnnXgbConfig, train: TrainConfig, img_size: int, name: str = "cnn_xgb"):
        self.config = config
        self.train = train
        self.img_size = img_size
        self.name = name

    def _cnn(self) -> TimmClassifier:
        net = NetConfig(arch=self.config.arch, pretrained=self.config.pretrained, lr=None,
                        epochs=self.config.finetune_epochs, backbone_lr=1.0,
                        precision=self.config.precision, seed_offset=0)
        return TimmClassifier(net, self.train, self.img_size, self.name)

    def fit(self, X: np.ndarray, y: np.ndarray, *, soft_targets: np.ndarray | None = None,
            eval_set: tuple[np.ndarray, np.ndarray] | None = None, on_epoch=None,
            progress: bool = True) -> CnnXgbClassifier:
        """Fine-tune (or freeze) the CNN, then fit the trees; arguments as TimmClassifier.fit."""
        started = time.perf_counter()
        if self.config.pretrained is not False:  # frozen pretrained features
            self.cnn_ = self._cnn().frozen()
        else:
            self.cnn_ = self._cnn().fit(X, y, soft_targets=soft_targets, eval_set=eval_set, on_epoch=on_epoch,
                                        progress=progress)
        rows, labels, weights = expand_soft(self.cnn_.features(X)[0], y,
                                            soft_targets if self.train.soft_labels else None)
        if self.train.class_balanced:
            weights = balance(labels, weights)
        val = None
        if eval_set is not None and len(eval_set[1]):
            val = (self.cnn_.features(eval_set[0])[0], np.asarray(eval_set[1], dtype=int))
        self.booster_, rounds = fit_booster(rows, labels, weights, val, self.config, self.train.seed,
                                            torch.get_num_threads())
        if on_epoch is not None:  # one logged step per boosting round, after any CNN epochs
            for i, values in enumerate(zip(*rounds.values())):
                on_epoch({"epoch": i + 1, **dict(zip(rounds, values))})
        self.classes_ = np.arange(N_CLASSES)
        self.val_macro_f1_ = None
        if val is not None:
            pred = self.booster_.predict(xgb.DMatrix(val[0])).argmax(axis=1)
            self.val_macro_f1_ = macro_f1(val[1], pred)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def predict_proba(self, X: np.ndarray, *, tta: bool = False, batch_size: int = 128) -> np.ndarray:
        """(N, 9) probabilities; with ``tta`` the trees' outputs are averaged over 8 views."""
        views = self.cnn_.features(X, tta=tta, batch_size=batch_size)
        probs = np.mean([self.booster_.predict(xgb.DMatrix(v)) for v in views], axis=0)
        probs = probs.astype(np.float64).reshape(len(X), N_CLASSES)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray, **kwargs) -> np.ndarray:
        return self.classes_[self.predict_proba(X, **kwargs).argmax(axis=1)]

    def summary(self) -> dict[str, Any]:
        cnn = self.cnn_.summary() if hasattr(self.cnn_, "result_") else None
        runtime = self.cnn_.runtime()
        return {"val_macro_f1": self.val_macro_f1_, "seconds": round(self.fit_seconds_, 2),
                "best_epoch": None if cnn is None else cnn["best_epoch"],
                "train_img_per_s": None if cnn is None else cnn["train_img_per_s"],
                "n_trees_rounds": self.booster_.num_boosted_rounds(),
                "precision": runtime.precision, "channels_last": runtime.channels_last,
                "precision_rule": runtime.rule,  # of the CNN that gives the features
                "cnn_finetune": cnn, "weights": self.cnn_.weights_.as_dict()}

    def save(self, directory: str | Path) -> None:
        """model.safetensors (the CNN), model.ubj (the trees), config.yaml."""
        directory = Path(directory)
        checkpoint.save_tensors(directory / "model.safetensors", self.cnn_.net_.state_dict())
        with atomic_path(directory / BOOSTER) as tmp:
            tmp.write_bytes(bytes(self.booster_.save_raw(raw_format="ubj")))
        write_yaml(directory / checkpoint.CONFIG, self.cnn_.resolved_config()  # precision as resolved
                   | {"name": self.name, "kind": self.kind, "model": to_dict(self.config) | {"precision": None}})

    @classmethod
    def load(cls, directory: str | Path) -> CnnXgbClassifier:
        cfg = checkpoint.read_config(directory)
        self = cls(from_section(CnnXgbConfig, cfg["model"], cfg["name"]),
                   from_section(TrainConfig, cfg["train"], "train"), cfg["crop_size"], cfg["name"])
        self.cnn_ = self._cnn().restore(directory, cfg)
        self.booster_ = xgb.Booster()
        path = Path(directory) / BOOSTER
        try:
            self.booster_.load_model(bytearray(path.read_bytes()))
        except xgb.core.XGBoostError as err:
            raise ValueError(f"{path}: refused to load: not an XGBoost UBJ model ({err})") from None
        self.classes_ = np.arange(N_CLASSES)
        return self
