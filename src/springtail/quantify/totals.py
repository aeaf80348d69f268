"""Species totals of a sample (a folder of photos) with a bias correction and an interval.

The estimate of species s over a sample of N accepted boxes is
``N * (annotated / accepted on the validation photos) * share_s``: the detector's count
correction (its misses against its false boxes; 1.00 when ``detect.min_score`` counts
without bias), times the species' share among the boxes, from their ensemble probabilities
by the chosen method (``methods``: CC, PACC or EMQ; the FOND column is left out and the
species columns renormalised, since an accepted box is counted as a springtail).

The interval is a bootstrap of the measurement, not of the photos: the sample's true total
is fixed and what is uncertain is how the detector and the ensemble saw it. Each of
``n_boot`` replicates takes the estimate (rounded) as the true totals, lets the detector
find each animal with its validation recall (binomial) and add false boxes at its
validation rate (Poisson, N * (1 - precision)), gives every found animal of species s the
probabilities of a validation crop of species s drawn at random (a false box those of a
validation false box), and estimates again with a bootstrap replicate of the calibration
(crops resampled within each species, the detector's counts drawn again), so that the
naming noise, the misses and false boxes, and the calibration's own noise all enter. The
replicates' errors (estimate - simulated truth) give the basic bootstrap interval
``[estimate - q_hi, estimate - q_lo]``, clipped at 0 and widened to whole animals.

``composite`` (the default) is PACC pulled towards CC, species by species, by the weight
that minimises the mean squared error over those same replicates
(``methods.shrinkage_weight``): PACC removes CC's bias but, with a few dozen boxes and a
calibration of a few dozen crops per species, adds the noise of its solve; for a species
that the ensemble rarely confuses the noise outweighs the bias and the weight goes to CC,
for one that it often confuses the other way. The replicates are simulated at the rounded
CC totals rather than at PACC's: PACC's totals are unbiased but noisy, and CC's simulated
bias at a noisy truth is too large on average (its square takes the noise in), which
overrated PACC in the benchmark (docs/decisions.md). Its interval is the hull of three basic
bootstrap intervals from those replicates: its own (its errors, CC's bias included), CC's
and PACC's. The weight is itself estimated from replicates simulated at a truth (the CC
totals) that leans the way CC errs, so the composite can sit on the wrong side of the
truth by more than its own errors show; the hull holds whichever of the two estimates the
sample supports (on a demo of another seed the composite's own interval and CC's held a
rare species' consensus total in far fewer than nine samples of ten; docs/decisions.md).
CC's interval is the range the plain count allows, so a species whose boxes were seen is
not shut at ``[0, 0]`` when PACC puts it at 0: the upper bound is at least that of the
count's own interval (below the count only where the replicates show the count's boxes to
be mostly other species misnamed).

A bootstrap over the sample's photos (``interval="photos"``, kept for comparison) measures
instead how the total of another sample of as many photos would vary: it adds the animals'
own spread between photos (about sqrt(total)) to the measurement error and gives wider
intervals around the same estimate. Boxes are taken as independent (touching animals and
photos of one sample share nothing here).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from springtail.common.classes import BACKGROUND, CODES
from springtail.quantify.calibration import N_SPECIES, SPECIES, Calibration, Replicate, recalibrated, species_probs
from springtail.quantify.methods import cc, emq, pacc, shrinkage_weight

SHARE_METHODS = ("cc", "pacc", "emq")  # from the boxes' probabilities alone
METHODS = (*SHARE_METHODS, "composite")  # composite: PACC shrunk towards CC (module docstring)
INTERVALS = ("measurement", "photos")
COLUMNS = ("species", "estimate", "low", "high", "cc", "boxes_to_check")


def shares(probs: np.ndarray, method: str, replicate: Replicate) -> np.ndarray:
    """(8,) species shares of (N, 8) species probabilities by ``method``."""
    if method == "cc":
        return cc(probs)
    if method == "pacc":
        return pacc(probs, replicate.mean_by_class)
    if method == "emq":
        return emq(recalibrated(probs, replicate), replicate.prior)
    raise ValueError(f"method: expected one of {', '.join(SHARE_METHODS)}, got {method!r}"
                     + (" (composite needs species_totals' replicates)" if method == "composite" else ""))


def estimate(probs: np.ndarray, method: str, replicate: Replicate) -> np.ndarray:
    """(8,) species totals of the boxes of (N, 8) species probabilities."""
    return len(probs) * replicate.count_factor * shares(probs, method, replicate)


def species_totals(box_probs: np.ndarray, photo_ids, calibration: Calibration, method: str = "composite",
                   level: float = 0.9, n_boot: int = 200, check_below: float = 0.5, random_state: int = 0,
                   interval: str = "measurement") -> pd.DataFrame:
    """Each species' total in a sample, bias-corrected, with a ``level`` interval.

    Args:
        box_probs: (N, 9) ensemble probabilities (``CODES`` order, FOND last) of the boxes
            the detector accepted in the sample's photos; N may be 0.
        photo_ids: (N,) the photo of each box (used by ``interval="photos"``).
        calibration: fitted on the validation photos (:meth:`Calibration.fit`).
        method: "cc" | "pacc" | "emq" (see ``methods``) | "composite" (PACC shrunk towards
            CC, see the module's docstring).
        level: the interval's coverage, in (0, 1).
        n_boot: bootstrap replicates (>= 20).
        check_below: a box whose top probability is below this is one to check by hand.
        random_state: seed of the simulated samples (the calibration's replicates have
            their own, ``calibration.seed``).
        interval: "measurement" (see the module's docstring) | "photos".
    Returns:
        One row per species (``SPECIES`` order): ``estimate`` (float), ``low`` and ``high``
        (whole animals), ``cc`` (boxes whose top class is the species: the plain count),
        ``boxes_to_check`` (of those, the ones with a top probability < ``check_below``).
    Raises:
        ValueError: naming the argument that is wrong (shape, length, value).
    """
    _check_arguments(method, level, n_boot, interval, check_below)
    raw = np.asarray(box_probs, dtype=float)
    if raw.ndim == 2 and raw.shape[0] == 0:
        raw = raw.reshape(0, len(CODES))
    probs = species_probs(raw, "box_probs")
    photos = np.asarray(photo_ids, dtype=object).reshape(-1)
    if len(photos) != len(probs):
        raise ValueError(f"photo_ids: one per box expected, got {len(photos)} for {len(probs)} boxes")
    rng = np.random.default_rng(random_state)
    if method == "composite":
        point, low, high, weight = _composite(probs, calibration, level, n_boot, rng)
    else:
        point, weight = estimate(probs, method, calibration.replicate()), None
        if interval == "measurement":
            low, high = _measurement_interval(point, len(probs), calibration, method, level, n_boot, rng)
    if interval == "photos":
        low, high = _photo_interval(probs, photos, point, calibration, method, weight, level, n_boot, rng)
    top = raw.argmax(axis=1) if len(raw) else np.zeros(0, int)
    unsure = raw.max(axis=1) < check_below if len(raw) else np.zeros(0, bool)
    return pd.DataFrame({"species": SPECIES, "estimate": point,
                         "low": np.floor(np.maximum(low, 0) + 1e-9).astype(np.int64),
                         "high": np.ceil(np.maximum(high, 0) - 1e-9).astype(np.int64),
                         "cc": np.bincount(top[top != BACKGROUND], minlength=N_SPECIES)[:N_SPECIES],
                         "boxes_to_check": np.bincount(top[unsure & (top != BACKGROUND)],
                                                       minlength=N_SPECIES)[:N_SPECIES]}, columns=list(COLUMNS))


def _simulated_errors(truth: np.ndarray, n_boxes: int, calibration: Calibration, methods: tuple[str, ...],
                      n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(n_boot, 8) errors (estimate - truth) of each of ``methods`` on samples simulated at
    the whole-animal totals ``truth`` (the module's docstring), one calibration replicate each."""
    pool = species_probs(calibration.probs)
    by_species = [pool[calibration.labels == s] for s in range(N_SPECIES)]
    false_pool = species_probs(calibration.false_probs) if len(calibration.false_probs) else pool
    errors = {name: np.empty((n_boot, N_SPECIES)) for name in methods}
    for b in range(n_boot):
        found = rng.binomial(truth, calibration.recall)
        n_false = rng.poisson(n_boxes * (1 - calibration.precision))
        parts = [rows[rng.integers(0, len(rows), k)] for rows, k in zip(by_species, found) if k and len(rows)]
        parts.append(false_pool[rng.integers(0, len(false_pool), n_false)])
        sample = np.concatenate(parts)
        for name in methods:
            errors[name][b] = estimate(sample, name, calibration.replicate(b)) - truth
    return errors


def _basic(point: np.ndarray, errors: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The basic bootstrap interval ``[point - q_hi, point - q_lo]`` of (n_boot, 8) ``errors``."""
    alpha = (1 - level) / 2
    return point - np.quantile(errors, 1 - alpha, axis=0), point - np.quantile(errors, alpha, axis=0)


def _measurement_interval(point: np.ndarray, n_boxes: int, calibration: Calibration, method: str, level: float,
                          n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The basic bootstrap interval from samples simulated at the rounded estimate."""
    truth = np.rint(point).astype(np.int64)
    return _basic(point, _simulated_errors(truth, n_boxes, calibration, (method,), n_boot, rng)[method], level)


def _composite(probs: np.ndarray, calibration: Calibration, level: float, n_boot: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(8,) each: PACC shrunk towards CC, its interval's low and high (the hull of its own,
    CC's and PACC's), and CC's weight; from one simulation at the rounded CC totals (the
    module's docstring)."""
    replicate = calibration.replicate()
    plain, corrected = estimate(probs, "cc", replicate), estimate(probs, "pacc", replicate)
    errors = _simulated_errors(np.rint(plain).astype(np.int64), len(probs), calibration, ("cc", "pacc"), n_boot, rng)
    weight = shrinkage_weight(errors["cc"], errors["pacc"])
    point = corrected + weight * (plain - corrected)
    low, high = _basic(point, errors["pacc"] + weight * (errors["cc"] - errors["pacc"]), level)
    for total, name in ((plain, "cc"), (corrected, "pacc")):
        other_low, other_high = _basic(total, errors[name], level)
        low, high = np.minimum(low, other_low), np.maximum(high, other_high)
    return point, low, high, weight


def _photo_interval(probs: np.ndarray, photos: np.ndarray, point: np.ndarray, calibration: Calibration,
                    method: str, weight: np.ndarray | None, level: float, n_boot: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of the estimate over the sample's photos drawn again (the
    composite with its ``weight`` held)."""
    if not len(probs):
        return point.copy(), point.copy()
    names, which = np.unique(photos.astype(str), return_inverse=True)
    rows_of = [np.flatnonzero(which == i) for i in range(len(names))]
    totals = np.empty((n_boot, N_SPECIES))
    for b in range(n_boot):
        rows = np.concatenate([rows_of[i] for i in rng.integers(0, len(names), len(names))])
        if weight is None:
            totals[b] = estimate(probs[rows], method, calibration.replicate())
        else:
            plain, corrected = (estimate(probs[rows], name, calibration.replicate()) for name in ("cc", "pacc"))
            totals[b] = corrected + weight * (plain - corrected)
    alpha = (1 - level) / 2
    return np.quantile(totals, alpha, axis=0), np.quantile(totals, 1 - alpha, axis=0)


def _check_arguments(method: str, level: float, n_boot: int, interval: str, check_below: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if interval not in INTERVALS:
        raise ValueError(f"interval: expected one of {', '.join(INTERVALS)}, got {interval!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level}")
    if n_boot < 20:
        raise ValueError(f"n_boot: expected at least 20 bootstrap replicates, got {n_boot}")
    if not 0 <= check_below <= 1:
        raise ValueError(f"check_below: expected a probability in [0, 1], got {check_below}")
