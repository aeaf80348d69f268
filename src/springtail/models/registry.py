"""The model registry: a name in params.yaml -> a factory of an unfitted classifier.

Every classifier follows one scikit-learn-like contract, so the training and
prediction stages and the ensemble treat a timm network and XGBoost alike::

    model = create_model(name, section, train, img_size)   # nothing happens yet
    model.fit(X, y, soft_targets=..., eval_set=(X_val, y_val)) -> model
    model.predict_proba(X, tta=...) -> (N, 9), columns follow model.classes_
    model.save(directory); load_model(directory) -> a fitted model
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from springtail.common.config import from_section
from springtail.models import checkpoint
from springtail.models.cnn_xgb import CnnXgbClassifier, CnnXgbConfig
from springtail.models.timm_net import HybridConfig, NetConfig, TimmClassifier, VitConfig
from springtail.models.training import TrainConfig


class Classifier(Protocol):
    """What the stages rely on."""

    classes_: np.ndarray

    def fit(self, X: np.ndarray, y: np.ndarray, **kwargs: Any) -> Classifier: ...
    def predict_proba(self, X: np.ndarray, *, tta: bool = False, batch_size: int = 128) -> np.ndarray: ...
    def summary(self) -> dict[str, Any]: ...
    def save(self, directory: str | Path) -> None: ...


Factory = Callable[[Mapping[str, Any] | None, TrainConfig, int, str], Classifier]


def _timm(config_cls: type[NetConfig]) -> Factory:
    def factory(section, train, img_size, name):
        return TimmClassifier(from_section(config_cls, section, name), train, img_size, name)

    return factory


def _cnn_xgb(section, train, img_size, name):
    return CnnXgbClassifier(from_section(CnnXgbConfig, section, name), train, img_size, name)


MODELS: dict[str, Factory] = {
    "effnet": _timm(NetConfig),
    "vit_hybrid": _timm(HybridConfig),
    "resnet": _timm(NetConfig),
    "convnext": _timm(NetConfig),
    "vit": _timm(VitConfig),
    "cnn_xgb": _cnn_xgb,
}

KINDS: dict[str, type] = {"timm_net": TimmClassifier, "cnn_xgb": CnnXgbClassifier}


def create_model(name: str, section: Mapping[str, Any] | None, train: TrainConfig, img_size: int) -> Classifier:
    """An unfitted classifier for model ``name`` configured by its params ``section``.

    A section may name another registered model as its ``family`` (``vit_hybrid_b:
    {family: vit_hybrid, ...}``): a second member built by the same factory.

    Raises:
        ValueError: an unknown model name (listing the known ones) or a bad section.
    """
    section = dict(section) if isinstance(section, Mapping) else section
    family = section.pop("family", name) if isinstance(section, dict) else name
    if family not in MODELS:
        where = f"model '{name}'" if family == name else f"{name}.family '{family}'"
        raise ValueError(f"unknown {where}; known models: {', '.join(MODELS)}")
    return MODELS[family](section, train, img_size, name)


def load_model(directory: str | Path) -> Classifier:
    """A fitted classifier from a checkpoint directory written by ``save``."""
    cfg = checkpoint.read_config(directory)
    if cfg["kind"] not in KINDS:
        raise ValueError(f"{Path(directory) / checkpoint.CONFIG}: unknown kind '{cfg['kind']}'; "
                         f"known: {', '.join(KINDS)}")
    return KINDS[cfg["kind"]].load(directory)
