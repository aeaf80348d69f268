"""From four experts' votes to one label per box.

Three methods, chosen by ``consensus.method``:

- ``unanimous``: a box is labelled only when all four experts agree.
- ``majority``: the strict majority, i.e. the unique most-voted class (3-1 and
  2-1-1 have one; 2-2 and 1-1-1-1 do not). Without one, ``tie_break=drop``
  leaves the box unlabelled and ``lowest_class`` takes the smallest tied class id.
- ``dawid_skene``: EM estimate of each expert's confusion matrix and of the
  class priors (Dawid & Skene 1979), initialised from the vote fractions; the
  posterior over classes is the soft label of every box. Dirichlet pseudo-counts
  (``smoothing`` per confusion row, centred on the expert's overall accuracy)
  keep rare classes' rows finite and sensible. Real and synthetic votes are
  over-dispersed (2-2 splits far more frequent than independent experts would
  give), which a free 9 x 9 matrix per expert overfits, letting a rare class
  such as FOND soak up every odd vote; a strong prior (large ``smoothing``,
  towards the one-coin model) measured best.
- ``dawid_skene_calibrated``: the same fit, with the posterior tempered: each
  expert's evidence is raised to the power 1/T (the class prior is not), T chosen
  on held-out agreement (leave one expert out, predict that expert's vote from the
  other three's tempered posterior, keep the T that predicts the held-out votes
  best). No answer file is read: only the votes decide how much they are worth.
  The confusion matrices are not refitted without the held-out expert, and the
  untempered prior weighs more, so a few labels can move towards frequent classes.

All functions take a ``(N, E)`` integer vote array and return arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from springtail.common.classes import N_CLASSES
from springtail.common.votes import strict_majority, vote_counts

METHODS = ("unanimous", "majority", "dawid_skene", "dawid_skene_calibrated")
TEMPERATURES = tuple(round(1 + 0.05 * i, 2) for i in range(101))  # 1.0 .. 6.0, searched for T
TIE_BREAKS = ("drop", "lowest_class")


@dataclass(frozen=True)
class ConsensusConfig:
    """The ``consensus`` section of ``params.yaml``."""

    method: str  # unanimous | majority | dawid_skene | dawid_skene_calibrated
    tie_break: str  # majority without a strict winner: drop | lowest_class
    max_iter: int  # Dawid-Skene EM iterations
    tol: float  # EM stops when the log-likelihood gains less than this
    min_confidence: float  # keep a box for training when its confidence >= this
    smoothing: float  # Dirichlet pseudo-boxes per confusion row, around the one-coin model

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"consensus.method must be one of {METHODS}, "
                             f"got {self.method!r}")
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"consensus.tie_break must be one of {TIE_BREAKS}, "
                             f"got {self.tie_break!r}")
        if self.max_iter < 1 or self.tol < 0 or self.smoothing <= 0:
            raise ValueError("consensus needs max_iter >= 1, tol >= 0, smoothing > 0")


@dataclass(frozen=True)
class Consensus:
    """The outcome of one method on N boxes."""

    label: np.ndarray  # (N,) int, -1 = no consensus label
    confidence: np.ndarray  # (N,) float: posterior max or winning vote fraction
    proba: np.ndarray  # (N, K) float soft label, rows sum to 1
    keep: np.ndarray  # (N,) bool: used for training
    expert_accuracy: np.ndarray  # (E,) float
    info: dict = field(default_factory=dict)  # method-specific diagnostics


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (N, K) table: how many of the n raters put subject i in class k.

    Every row must sum to the same n >= 2.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)
    if len(counts) == 0 or not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("fleiss_kappa: every subject needs the same number (>= 2) of ratings")
    n = n[0]
    p_subject = ((counts**2).sum(axis=1) - n) / (n * (n - 1))  # observed agreement per subject
    p_class = counts.sum(axis=0) / counts.sum()
    p_bar, p_e = p_subject.mean(), (p_class**2).sum()
    return float((p_bar - p_e) / (1.0 - p_e)) if p_e < 1 else 1.0


def agreement_with(votes: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(E,) fraction of boxes with a label (>= 0) where each expert voted that label."""
    has = label >= 0
    if not has.any():
        return np.full(votes.shape[1], np.nan)
    return (votes[has] == label[has, None]).mean(axis=0)


def unanimous(votes: np.ndarray) -> Consensus:
    """Label only the boxes on which every expert agrees."""
    counts = vote_counts(votes)
    frac = counts / counts.sum(axis=1, keepdims=True)
    label = np.where(counts.max(axis=1) == votes.shape[1], counts.argmax(axis=1), -1)
    return Consensus(label, frac.max(axis=1), frac, label >= 0,
                     agreement_with(votes, strict_majority(votes)))


def majority(votes: np.ndarray, tie_break: str = "drop") -> Consensus:
    """Strict majority; ties dropped (label -1) or given to the lowest tied class id."""
    counts = vote_counts(votes)
    frac = counts / counts.sum(axis=1, keepdims=True)
    strict = strict_majority(votes)
    label = strict if tie_break == "drop" else counts.argmax(axis=1)  # argmax: lowest tied id
    return Consensus(label, frac.max(axis=1), frac, label >= 0, agreement_with(votes, strict))


def _m_step(votes: np.ndarray, post: np.ndarray, smoothing: float):
    """Class priors (K,) and confusion matrices (E, K true, K voted) from posteriors (N, K).

    Each confusion row gets ``smoothing`` Dirichlet pseudo-counts whose mean is the
    expert's one-coin model (its overall accuracy on the diagonal, the errors spread
    evenly): a rare class's row falls back to how the expert behaves overall rather
    than to a uniform row, which would let the rare class explain every odd vote.
    """
    n, k = post.shape
    priors = (post.sum(axis=0) + 1.0) / (n + k)  # add-one: no class has prior 0
    eye = np.eye(k)
    counts = np.stack([post.T @ eye[votes[:, j]] for j in range(votes.shape[1])])  # (E, K, K)
    # (E,) one-coin accuracy, Beta(1, 1)-smoothed: never exactly 1, even for an expert
    # who agreed with the consensus on every box of a small data set.
    accuracy = (np.trace(counts, axis1=1, axis2=2) + 1.0) / (n + 2.0)
    base = accuracy[:, None, None] * eye + ((1 - accuracy) / (k - 1))[:, None, None] * (1 - eye)
    conf = (counts + smoothing * base) / (counts.sum(axis=2, keepdims=True) + smoothing)
    return priors, conf


def _e_step(votes: np.ndarray, priors: np.ndarray, conf: np.ndarray, temperature: float = 1.0,
            experts: list[int] | None = None):
    """Posteriors (N, K) and the total log-likelihood of the votes of ``experts`` (all by
    default), each expert's evidence raised to the power 1 / ``temperature``."""
    experts = range(votes.shape[1]) if experts is None else experts
    log_joint = np.log(priors)[None, :] + sum(
        np.log(conf[j][:, votes[:, j]]).T for j in experts
    ) / temperature  # (N, K)
    log_evidence = logsumexp(log_joint, axis=1)
    return np.exp(log_joint - log_evidence[:, None]), float(log_evidence.sum())


def held_out_temperature(votes: np.ndarray, priors: np.ndarray, conf: np.ndarray) -> tuple[float, dict]:
    """The posterior temperature that best predicts each expert's vote from the others'.

    For every expert e and candidate T: the posterior from the other experts' votes,
    tempered by T, predicts e's vote through e's confusion matrix; T minimises the
    summed negative log-likelihood of the held-out votes (a grid, the same on every CPU).

    Returns (T, {T: held-out NLL per vote} for T = 1 and the chosen T).
    """
    n, e = votes.shape
    nll = []
    for temperature in TEMPERATURES:
        total = 0.0
        for held in range(e):
            post, _ = _e_step(votes, priors, conf, temperature, [j for j in range(e) if j != held])
            total -= np.log((post @ conf[held])[np.arange(n), votes[:, held]]).sum()
        nll.append(total / (n * e))
    best = int(np.argmin(nll))
    return TEMPERATURES[best], {1.0: round(float(nll[0]), 6), TEMPERATURES[best]: round(float(nll[best]), 6)}


def dawid_skene(votes: np.ndarray, smoothing: float = 1000.0, max_iter: int = 200,
                tol: float = 1e-6, n_classes: int = N_CLASSES, calibrate: bool = False) -> Consensus:
    """Dawid-Skene EM over (N, E) votes; the label is the posterior argmax.

    With ``calibrate`` the final posterior is tempered by :func:`held_out_temperature`.

    Returns a :class:`Consensus` whose ``info`` holds the priors (K,), the confusion
    matrices (E, K, K; rows: true class, columns: vote), the iterations run,
    the final log-likelihood and whether EM converged within ``max_iter``.
    """
    votes = np.asarray(votes, dtype=np.int64)
    counts = vote_counts(votes, n_classes)
    post = counts / counts.sum(axis=1, keepdims=True)  # majority-vote soft counts
    previous, converged = -np.inf, False
    for iteration in range(1, max_iter + 1):
        priors, conf = _m_step(votes, post, smoothing)
        post, loglik = _e_step(votes, priors, conf)
        if loglik - previous < tol:
            converged = True
            break
        previous = loglik
    accuracy = np.einsum("k,ekk->e", priors, conf)  # P(expert votes the true class)
    info = {"iterations": iteration, "converged": converged, "log_likelihood": loglik,
            "priors": priors, "confusion": conf}
    if calibrate:
        temperature, held_out = held_out_temperature(votes, priors, conf)
        post, _ = _e_step(votes, priors, conf, temperature)
        info |= {"temperature": temperature, "held_out_nll": held_out}
    return Consensus(post.argmax(axis=1), post.max(axis=1), post,
                     np.ones(len(votes), dtype=bool), accuracy, info)


DECIMALS = 6  # posteriors and confidences are kept (and written) at this precision


def settle(result: Consensus, relabel: bool, decimals: int = DECIMALS) -> Consensus:
    """``result`` with its posteriors and confidences rounded to ``decimals``.

    Their last digits follow numpy's SIMD kernels and OpenBLAS's, so they differ
    between CPUs; rounded, every machine writes the same labels.csv. With
    ``relabel`` (a posterior-argmax method) the label is taken again from the
    rounded posteriors, so classes tied up to the last bits go to the lowest
    class id on every machine instead of to whichever won by rounding noise.
    """
    proba = np.round(result.proba, decimals)
    label = np.where(result.label >= 0, proba.argmax(axis=1), -1) if relabel else result.label
    return dataclasses.replace(result, label=label, proba=proba,
                               confidence=np.round(result.confidence, decimals))


def run_consensus(votes: np.ndarray, config: ConsensusConfig) -> Consensus:
    """Apply ``config.method`` (rounded by :func:`settle`); a box is kept when labelled and
    confident enough."""
    votes = np.asarray(votes, dtype=np.int64)
    if config.method == "unanimous":
        result = unanimous(votes)
    elif config.method == "majority":
        result = majority(votes, config.tie_break)
    else:
        result = dawid_skene(votes, config.smoothing, config.max_iter, config.tol,
                             calibrate=config.method == "dawid_skene_calibrated")
    result = settle(result, relabel=config.method.startswith("dawid_skene"))
    keep = (result.label >= 0) & (result.confidence >= config.min_confidence)
    return dataclasses.replace(result, keep=keep)


def compare_methods(votes: np.ndarray, config: ConsensusConfig) -> dict[str, Consensus]:
    """Every method under the same tie rule and threshold, keyed by name."""
    return {m: run_consensus(votes, dataclasses.replace(config, method=m)) for m in METHODS}
