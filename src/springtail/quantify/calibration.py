"""What the species totals are corrected with: the ensemble's and the detector's behaviour on
the validation photos, fitted once, saved as plain JSON (no pickle) in a model bundle."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import BACKGROUND, CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.io import read_json, write_json
from springtail.quantify.methods import apply_bcts, fit_bcts, mean_probs_by_class

SPECIES = [c for c in CODES if c != CODES[BACKGROUND]]
N_SPECIES = len(SPECIES)
FORMAT = "springtail-quantify-calibration/1"


def species_probs(probs: np.ndarray, what: str = "probabilities") -> np.ndarray:
    """(N, 8) the species columns of (N, 9) ensemble probabilities, renormalised: a box that
    is counted is taken to be a springtail, and its FOND probability says nothing of which.

    Raises:
        ValueError: naming ``what``, when the array is not (N, 9), holds a value that is not
            finite or negative, or a row without species probability.
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != N_CLASSES:
        raise ValueError(f"{what}: expected an (N, {N_CLASSES}) array of class probabilities "
                         f"({', '.join(CODES)}), got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        row = int(np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1))[0])
        raise ValueError(f"{what}: row {row} holds a negative or non-finite probability: {probs[row].tolist()}")
    total = probs[:, :N_SPECIES].sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"{what}: row {int(np.flatnonzero(total[:, 0] <= 0)[0])} gives no species any probability")
    return probs[:, :N_SPECIES] / total


class Replicate:
    """One bootstrap replicate of the calibration (or the calibration itself): what each
    method is fitted with. EMQ's recalibration is fitted on first use only."""

    def __init__(self, probs: np.ndarray, labels: np.ndarray, count_factor: float) -> None:
        self.probs, self.labels = probs, labels  # (n, 8) species probabilities, (n,) species
        self.count_factor = count_factor  # detector: annotated / accepted boxes
        self.mean_by_class = mean_probs_by_class(probs, labels, N_SPECIES)  # (8, 8) PACC's M
        self.prior = np.bincount(labels, minlength=N_SPECIES) / len(labels)  # (8,) EMQ's prior

    @functools.cached_property
    def bcts(self) -> np.ndarray:
        """(9,) EMQ's recalibration: temperature, then one bias per species."""
        return fit_bcts(self.probs, self.labels)


@dataclass(frozen=True, eq=False)
class Calibration:
    """The validation boxes' out-of-fold ensemble probabilities and consensus species, and
    the detector's validation counts. Build with :meth:`fit`; :meth:`save` / :meth:`load`."""

    probs: np.ndarray  # (n, 9) ensemble probabilities of validation crops of a species, top class not FOND
    labels: np.ndarray  # (n,) their consensus species, 0..7
    n_annotated: int  # annotated boxes on the validation photos
    n_accepted: int  # boxes the detector accepted there
    n_matched: int  # accepted boxes that found an annotated one (IoU >= detect.iou)
    false_probs: np.ndarray  # (m, 9) ensemble probabilities of the accepted boxes that found none
    seed: int = 0  # of the calibration's bootstrap replicates
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def fit(cls, val: pd.DataFrame, boxes: pd.DataFrame | None = None, n_annotated: int | None = None,
            seed: int = 0) -> Calibration:
        """From the ensemble's validation table (``label``, ``p0``..``p8``: out-of-fold
        probabilities of the validation crops, e.g. ``data/processed/ensemble/val.csv``) and
        the detector's accepted boxes on the validation photos (``p0``..``p8`` and
        ``matched``: bool, found an annotated box) with the photos' ``n_annotated`` boxes.
        Without ``boxes`` the detector is taken to count without error.

        Raises:
            ValueError: a column missing, a label outside -1..8, no species crop, or
                ``boxes`` without ``n_annotated``.
        """
        _require(val, ("label", *PROB_COLUMNS), "validation table")
        labels = val["label"].to_numpy()
        if not np.isin(labels, np.arange(-1, N_CLASSES)).all():
            raise ValueError(f"validation table: labels must be -1..{N_CLASSES - 1}, got {sorted(set(labels))}")
        probs = val[list(PROB_COLUMNS)].to_numpy(dtype=float)
        keep = (labels >= 0) & (labels < N_SPECIES) & (probs.argmax(axis=1) != BACKGROUND)
        if not keep.any():
            raise ValueError("validation table: no crop of a species that the ensemble does not call FOND")
        species_probs(probs[keep], "validation table")
        if boxes is None:
            n = int(keep.sum())
            return cls(probs[keep], labels[keep].astype(int), n, n, n, np.zeros((0, N_CLASSES)), seed)
        _require(boxes, ("matched", *PROB_COLUMNS), "detected boxes table")
        if n_annotated is None or n_annotated < 0:
            raise ValueError(f"n_annotated: the validation photos' annotated boxes are needed with the "
                             f"detected boxes, got {n_annotated}")
        matched = boxes["matched"].to_numpy(dtype=bool)
        box_probs = boxes[list(PROB_COLUMNS)].to_numpy(dtype=float)
        return cls(probs[keep], labels[keep].astype(int), int(n_annotated), len(boxes), int(matched.sum()),
                   box_probs[~matched], seed)

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_annotated if self.n_annotated else 1.0

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_accepted if self.n_accepted else 1.0

    def replicate(self, index: int | None = None) -> Replicate:
        """The calibration itself (``index`` None), or its bootstrap replicate ``index``: the
        crops resampled within each species, the detector's matched and false boxes drawn
        again (binomial). Deterministic given ``seed``, and cached."""
        if index not in self._cache:
            self._cache[index] = self._replicate(index)
        return self._cache[index]

    def _replicate(self, index: int | None) -> Replicate:
        labels, probs = self.labels, species_probs(self.probs)
        n_acc = self.n_accepted
        if index is not None:
            rng = np.random.default_rng([self.seed, index])
            rows = np.concatenate([rng.choice(np.flatnonzero(labels == j), (labels == j).sum())
                                   for j in np.unique(labels)])
            labels, probs = labels[rows], probs[rows]
            n_acc = max(1, rng.binomial(self.n_annotated, self.recall) + rng.binomial(n_acc, 1 - self.precision))
        return Replicate(probs, labels, self.n_annotated / n_acc if n_acc else 1.0)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "classes": list(CODES), "probs": self.probs.tolist(), "labels": self.labels.tolist(),
                "n_annotated": self.n_annotated, "n_accepted": self.n_accepted, "n_matched": self.n_matched,
                "false_probs": self.false_probs.tolist(), "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict, what: str = "calibration") -> Calibration:
        """Raises: ValueError naming ``what`` and the key, for another format or classes."""
        if data.get("format") != FORMAT or data.get("classes") != list(CODES):
            raise ValueError(f"{what}: not a {FORMAT} calibration for classes {list(CODES)} "
                             f"(format {data.get('format')!r}, classes {data.get('classes')})")
        try:
            return cls(np.array(data["probs"], dtype=float).reshape(-1, N_CLASSES), np.array(data["labels"], dtype=int),
                       int(data["n_annotated"]), int(data["n_accepted"]), int(data["n_matched"]),
                       np.array(data["false_probs"], dtype=float).reshape(-1, N_CLASSES), int(data["seed"]))
        except KeyError as err:
            raise ValueError(f"{what}: missing key {err}") from None

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_dict(read_json(path), str(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Calibration) and self.to_dict() == other.to_dict()


def _require(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, table.columns))})")


def recalibrated(probs: np.ndarray, replicate: Replicate) -> np.ndarray:
    """(N, 8) species probabilities recalibrated for EMQ."""
    return apply_bcts(probs, replicate.bcts)

