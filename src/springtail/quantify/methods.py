"""Class shares of a set of boxes from their classifier probabilities: CC, PACC and EMQ.

A classifier's errors do not cancel when a sample's species mix differs from the one it
was validated on (prior shift): counting each box's top class (CC, classify and count)
gives a rare species the misnamed boxes of the common ones, and a class-balanced loss
pushes every species towards the same share. Two standard corrections, both fitted on
out-of-fold validation probabilities with known labels:

- PACC (probabilistic adjusted classify and count; Bella et al. 2010): the mean
  probability vector of a sample is ``q = M^T pi``, where row j of ``M`` is the mean
  probability vector of the validation boxes of class j; ``pi`` is solved by least squares
  on the simplex (``scipy.optimize.nnls`` with a heavily weighted sum-to-one row).
- EMQ (Saerens, Latinne and Decaestecker 2002): EM on the sample's probabilities, each
  rescaled by ``pi / prior`` and renormalised, until ``pi`` is the mean rescaled
  probability. It needs probabilities calibrated to ``prior``; a class-balanced loss
  leaves them calibrated to no prior at all, so they are first recalibrated on the
  validation boxes (a temperature and one bias per class, fitted by likelihood: BCTS,
  Alexandari et al. 2020), after which ``prior`` is the validation boxes' class shares.

Written with numpy and scipy rather than QuaPy (BSD-3, the reference implementation):
QuaPy's aggregative quantifiers accept precomputed posteriors, but it installs xlrd,
abstention, ucimlrepo and certifi besides (data-set downloaders this pipeline has no use
for) for some forty lines, and the interval's bootstrap calls an estimator tens of
thousands of times on arrays of a few dozen rows, where plain array code is simplest.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, nnls

SUM_WEIGHT = 1e3  # weight of the sum-to-one row in PACC's least squares
EM_TOL = 1e-8  # EMQ stops when no share moves more than this
EM_MAX_ITER = 1000


def cc(probs: np.ndarray) -> np.ndarray:
    """(K,) share of the (N, K) ``probs`` rows whose top class is each class (zeros for N=0)."""
    if not len(probs):
        return np.zeros(probs.shape[1])
    return np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)


def mean_probs_by_class(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) row j: the mean probability vector of the rows labelled j (the uniform vector
    for a class without rows, so that it is told apart from none)."""
    rows = np.full((n_classes, probs.shape[1]), 1.0 / probs.shape[1])
    for j in range(n_classes):
        if (labels == j).any():
            rows[j] = probs[labels == j].mean(axis=0)
    return rows


def pacc(probs: np.ndarray, mean_by_class: np.ndarray) -> np.ndarray:
    """(K,) class shares of the (N, K) ``probs``: ``M^T pi = mean(probs)`` solved on the
    simplex, ``M`` the (K, K) ``mean_by_class``; zeros for N=0."""
    if not len(probs):
        return np.zeros(mean_by_class.shape[0])
    k = mean_by_class.shape[0]
    a = np.vstack([mean_by_class.T, np.full((1, k), SUM_WEIGHT)])
    b = np.concatenate([probs.mean(axis=0), [SUM_WEIGHT]])
    shares, _ = nnls(a, b)
    return shares / shares.sum() if shares.sum() > 0 else np.full(k, 1.0 / k)


def emq(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """(K,) class shares of the (N, K) ``probs`` (calibrated to ``prior``) by Saerens' EM,
    started from ``prior``; zeros for N=0."""
    if not len(probs):
        return np.zeros(len(prior))
    prior = np.maximum(prior, 1e-12)
    shares = prior.copy()
    for _ in range(EM_MAX_ITER):
        weighted = probs * (shares / prior)
        weighted /= np.maximum(weighted.sum(axis=1, keepdims=True), 1e-300)
        new = weighted.mean(axis=0)
        if np.abs(new - shares).max() < EM_TOL:
            return new
        shares = new
    return shares


def fit_bcts(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K + 1,) temperature and per-class biases that make ``softmax(log(probs) / T + b)``
    fit ``labels`` best (negative log-likelihood, L-BFGS; the first bias held at 0)."""
    logits = np.log(np.clip(probs, 1e-12, None))
    k = probs.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inv_t, bias = np.exp(theta[0]), np.concatenate([[0.0], theta[1:]])
        z = logits * inv_t + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        onehot = np.eye(k)[labels]
        nll = -np.log(np.clip(p[np.arange(len(labels)), labels], 1e-300, None)).mean()
        grad_z = (p - onehot) / len(labels)
        return nll, np.concatenate([[(grad_z * logits).sum() * inv_t], grad_z.sum(axis=0)[1:]])

    theta = minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B").x
    return np.concatenate([[np.exp(-theta[0])], [0.0], theta[1:]])


def apply_bcts(probs: np.ndarray, params: np.ndarray) -> np.ndarray:
    """``probs`` recalibrated by :func:`fit_bcts`'s (K + 1,) temperature and biases."""
    z = np.log(np.clip(probs, 1e-12, None)) / params[0] + params[1:]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def shrinkage_weight(cc_errors: np.ndarray, pacc_errors: np.ndarray) -> np.ndarray:
    """(K,) weight ``w`` in [0, 1] of CC in ``PACC + w (CC - PACC)`` that minimises the mean
    squared error over the (B, K) errors of CC and PACC on the same B simulated samples:
    ``w = -mean(e_pacc d) / mean(d^2)``, ``d = e_cc - e_pacc``. The correction is trusted in
    proportion to how much its own noise (PACC's variance, which CC does not share) is
    smaller than the bias it removes (CC's, in ``mean(d^2)``); 1 (CC) when both agree on
    every sample."""
    diff = cc_errors - pacc_errors
    spread = (diff * diff).mean(axis=0)
    weight = np.divide(-(pacc_errors * diff).mean(axis=0), spread, out=np.ones(diff.shape[1]), where=spread > 0)
    return np.clip(weight, 0.0, 1.0)
