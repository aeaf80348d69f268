"""The model as a fifth opinion: out-of-fold class probabilities of every training crop.

A logistic regression on frozen pretrained CNN features (the cheapest honest model:
one forward pass per crop, then seconds of fitting) predicts each crop from a model
that never saw it. Validation-fold crops are predicted by a model fitted on every
training fold; each training fold's crops by a model fitted on the *other training
folds* only, so no validation label ever reaches the training targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from springtail.common.classes import N_CLASSES

FLOOR = 1e-3  # smallest probability the model gives a class (a class absent from a fold)


@dataclass(frozen=True)
class ReviewConfig:
    """The ``review`` section of ``params.yaml``."""

    arch: str  # CNN whose frozen pooled features the opinion model reads
    pretrained: bool | str  # its weights: a packaged network, a file, true (hub) or false
    inverse_l2: float  # C of the logistic regression: larger = weaker L2 penalty
    weight: float  # the model's say as a fifth expert: its probabilities ^ weight
    relabel: bool  # train on the second-pass labels (experts and model) instead of the consensus
    batch_size: int  # crops per forward pass of the CNN

    def __post_init__(self) -> None:
        if self.inverse_l2 <= 0 or self.weight < 0 or self.batch_size < 1:
            raise ValueError("review needs inverse_l2 > 0, weight >= 0, batch_size >= 1")


def fit_predict(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                inverse_l2: float) -> np.ndarray:
    """(n_test, 9) probabilities of a logistic regression fitted on the ``train`` rows.

    Classes absent from the fitted rows get :data:`FLOOR`; rows sum to 1.
    """
    probs = np.full((int(test.sum()), N_CLASSES), FLOOR)
    seen = np.unique(labels[train])
    if len(seen) == 1:  # one class to learn from: it is the only opinion
        probs[:, seen[0]] = 1.0
        return probs / probs.sum(axis=1, keepdims=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=inverse_l2, max_iter=2000))
    model.fit(features[train], labels[train])
    probs[:, model.classes_] = np.maximum(model.predict_proba(features[test]), FLOOR)
    return probs / probs.sum(axis=1, keepdims=True)


def out_of_fold(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, val_fold: int,
                inverse_l2: float) -> np.ndarray:
    """(N, 9) out-of-fold probabilities (see the module docstring).

    Args:
        features: (N, D) float. labels: (N,) int classes the model learns (consensus).
        folds: (N,) int fold of each crop; ``val_fold`` is the held-out validation fold.
    Raises:
        ValueError: fewer than two training folds.
    """
    training_folds = sorted(set(folds.tolist()) - {val_fold})
    if len(training_folds) < 2:
        raise ValueError(f"out-of-fold opinions need >= 2 training folds besides fold {val_fold}, "
                         f"got {training_folds}")
    probs = np.zeros((len(labels), N_CLASSES))
    for fold in [*training_folds, val_fold]:
        test = folds == fold
        if not test.any():
            continue
        train = (folds != fold) & (folds != val_fold)
        probs[test] = fit_predict(features, labels, train, test, inverse_l2)
    return probs


def crop_features(images: np.ndarray, config: ReviewConfig) -> np.ndarray:
    """(N, D) pooled features of uint8 crops (N, S, S, 3) from the frozen CNN ``config.arch``
    (fp32, so the features are the same on CPUs with and without bf16)."""
    import torch

    from springtail.models.inference import Runtime, forward_views
    from springtail.models.timm_net import norm_of
    from springtail.models.weights import create_net

    with torch.random.fork_rng(devices=[]):  # a random-init CNN (pretrained: false) is seeded
        torch.manual_seed(0)
        net, weights = create_net(config.arch, 0, config.pretrained)
    runtime = Runtime.resolve("auto", precision="fp32", channels_last=True)
    return forward_views(runtime.place(net), images, lambda n, x: n(x), norm=norm_of(net, weights),
                         runtime=runtime, batch_size=config.batch_size)[0]
