"""Which proposals frame a springtail: a regression of each proposal's IoU with the
nearest annotated box, learned on the training folds' photos.

Predicting the IoU (not just "animal or not") ranks a tight box above the one that
also swallowed a fibre or a neighbour, so that non-maximum suppression keeps the right
one of overlapping proposals; a box is then accepted when its predicted IoU reaches
``detect.min_score``, by default the threshold at which the training photos, scored out
of fold, get as many boxes as they have annotated springtails (counts without bias).
Gradient-boosted trees on the proposals' FEATURES (size, shape, darkness, colour):
debris, bubbles and stains differ from animals there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xgboost as xgb
from sklearn.model_selection import GroupKFold
from torchvision.ops import box_iou, nms

from springtail.common.config import from_section, to_dict
from springtail.common.io import atomic_directory, read_json, write_json
from springtail.common.policy import DataError, SkipLog
from springtail.common.runtime import cpu_count, ordered_map
from springtail.crops.regions import pixel_box
from springtail.detect.candidates import BOX, FEATURES, PROPOSAL_KEYS, DetectConfig, propose

OOF_FOLDS = 5  # folds of training photos for the out-of-fold scores that choose min_score
THRESHOLDS = np.round(np.arange(0.2, 0.71, 0.05), 2)  # the min_score values tried


def pairwise_iou(boxes: pd.DataFrame, others: pd.DataFrame) -> np.ndarray:
    """(n, m) intersection over union of every box of ``boxes`` with every box of ``others``
    (x0, y0, x1, y1 in pixels, x1/y1 exclusive; 0 when two boxes only touch)."""
    return box_iou(torch.tensor(boxes[BOX].to_numpy(np.float64)),
                   torch.tensor(others[BOX].to_numpy(np.float64))).numpy()


def best_iou(boxes: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(n,) the IoU of each box of ``boxes`` with the annotated box of ``truth`` it overlaps
    most (0 when the photo has none), and (n,) that box's row number (-1 for none); both
    tables hold x0, y0, x1, y1 in pixels."""
    if not len(boxes) or not len(truth):
        return np.zeros(len(boxes)), np.full(len(boxes), -1)
    pairs = pairwise_iou(boxes, truth)
    return pairs.max(axis=1), pairs.argmax(axis=1)


def annotated_count(photos: list[tuple[str, pd.DataFrame]]) -> int:
    """The annotated boxes of ``photos`` ((path, its YOLO rows) per photo)."""
    return sum(len(rows) for _, rows in photos)


def pixel_boxes(rows: pd.DataFrame, size: tuple[int, int]) -> pd.DataFrame:
    """x0, y0, x1, y1 in pixels of a photo of ``size`` (width, height), from YOLO rows
    (xc, yc, w, h: fractions of the photo)."""
    boxes = [pixel_box(r.xc, r.yc, r.w, r.h, *size) for r in rows.itertuples()]
    return pd.DataFrame(boxes, columns=BOX, dtype=np.int64)


def suppress(boxes: pd.DataFrame, scores: np.ndarray, config: DetectConfig) -> np.ndarray:
    """Indices (into ``boxes``) of the proposals kept by non-maximum suppression at
    ``nms_iou``, best score first, at most ``max_candidates``."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    kept = nms(torch.tensor(boxes[BOX].to_numpy(np.float64)), torch.tensor(scores, dtype=torch.float64),
               config.nms_iou)
    return kept.numpy()[:config.max_candidates]


@dataclass
class BoxScorer:
    """The fitted regression and what it was fitted with (``min_area``: the smallest
    proposal kept, a fraction of the photo)."""

    booster: xgb.XGBRegressor
    min_area: float
    config: DetectConfig
    chosen_score: float  # the out-of-fold choice of min_score

    @property
    def min_score(self) -> float:
        """The predicted IoU from which a box is a springtail: ``detect.min_score`` when set."""
        return self.chosen_score if self.config.min_score is None else self.config.min_score

    def score(self, proposals: pd.DataFrame) -> np.ndarray:
        """(n,) predicted IoU of each proposal with a springtail, clipped to [0, 1]."""
        if not len(proposals):
            return np.zeros(0)
        return np.clip(self.booster.predict(proposals[list(FEATURES)].to_numpy(np.float32)), 0, 1)

    def save(self, directory: str | Path) -> None:
        with atomic_directory(directory) as tmp:
            self.booster.save_model(tmp / "scorer.json")
            write_json(tmp / "settings.json", {"min_area": round(self.min_area, 6), "min_score": self.chosen_score,
                                               "features": list(FEATURES),
                                               "config": to_dict(self.config)})

    @classmethod
    def load(cls, directory: str | Path, config: DetectConfig) -> BoxScorer:
        """The scorer of ``directory`` (the detector stage's output), for proposals made
        with ``config``.

        Raises:
            FileNotFoundError: naming the missing file (run ``dvc repro`` or ``dvc pull``).
            ValueError: the scorer was fitted on other features or proposal settings.
        """
        settings_path = Path(directory) / "settings.json"
        if not settings_path.exists():
            raise FileNotFoundError(f"{settings_path}: missing (run `dvc repro detector` or `dvc pull`)")
        settings = read_json(settings_path)
        if settings.get("features") != list(FEATURES):
            raise ValueError(f"{settings_path}: fitted on features {settings.get('features')}, this code "
                             f"computes {list(FEATURES)} (run `dvc repro detector`)")
        fitted, asked = settings["config"], to_dict(config)
        changed = [k for k in PROPOSAL_KEYS if fitted.get(k) != asked[k]]
        if changed:
            raise ValueError(f"{settings_path}: fitted on proposals made with other detect.{', '.join(changed)} "
                             f"than the params file's (run `dvc repro detector`)")
        booster = xgb.XGBRegressor()
        booster.load_model(Path(directory) / "scorer.json")
        return cls(booster, float(settings["min_area"]), config, float(settings["min_score"]))


def load_fitted_scorer(directory: str | Path) -> BoxScorer:
    """The scorer of ``directory`` with the detect settings it was fitted with (as a model
    bundle holds it: no params file needed).

    Raises:
        FileNotFoundError / ValueError: naming ``settings.json`` when it is missing or bad.
    """
    path = Path(directory) / "settings.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (run `dvc repro detector` or `dvc pull`)")
    try:
        section = read_json(path)["config"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not the detector's settings ({err!r})") from None
    return BoxScorer.load(directory, from_section(DetectConfig, section, "detect", path))


def proposals_or_error(path: str | Path, config: DetectConfig,
                       min_area: float) -> tuple[pd.DataFrame, tuple[int, int]] | DataError:
    """One photo's proposals and size, or the DataError naming it (sent back from a worker)."""
    try:
        return propose(path, config, min_area)
    except DataError as err:
        return err


def fit_scorer(photos: list[tuple[str, pd.DataFrame]], config: DetectConfig, min_area: float,
               log: SkipLog, workers: int = 0) -> tuple[BoxScorer, pd.DataFrame]:
    """Fit the scorer on the proposals of ``photos`` ((path, its annotated boxes: YOLO rows
    xc, yc, w, h) per photo); an unreadable photo goes to ``log``. Returns the scorer and
    the labelled proposals (photo, box, setting, FEATURES, target: the best IoU, nearest:
    that box's row). The proposals are found in worker processes (numpy only); their IoUs
    are computed here, once the workers are done."""
    work = functools.partial(proposals_or_error, config=config, min_area=min_area)
    found = list(ordered_map(work, [path for path, _ in photos], workers or cpu_count()))
    labelled = []
    for (path, rows), result in zip(photos, found):
        if isinstance(result, DataError):
            log.handle(result)
            continue
        proposals, size = result
        target, nearest = best_iou(proposals, pixel_boxes(rows, size))
        labelled.append(proposals.assign(photo=Path(path).name, target=target, nearest=nearest))
    table = pd.concat(labelled, ignore_index=True) if labelled else pd.DataFrame(columns=["target"])
    if len(table) < 2 or table["target"].max() <= 0:
        raise ValueError(f"{len(photos)} training photos gave {len(table)} proposals, none on an annotated box: "
                         f"nothing to learn the scorer from (check detect.thresholds and the annotations)")
    X, y = table[list(FEATURES)].to_numpy(np.float32), table["target"].to_numpy(np.float32)
    out_of_fold = np.zeros(len(table))
    folds = min(OOF_FOLDS, table["photo"].nunique())
    if folds < 2:
        raise ValueError("proposals on a single training photo: at least 2 are needed to choose min_score "
                         "out of fold")
    for fit, held in GroupKFold(folds).split(X, y, groups=table["photo"]):
        out_of_fold[held] = np.clip(_booster(config).fit(X[fit], y[fit]).predict(X[held]), 0, 1)
    table["out_of_fold"] = out_of_fold
    chosen = best_threshold(table, annotated_count(photos), config)
    return BoxScorer(_booster(config).fit(X, y), min_area, config, chosen), table


def _booster(config: DetectConfig) -> xgb.XGBRegressor:
    return xgb.XGBRegressor(n_estimators=config.scorer_trees, max_depth=config.scorer_depth,
                            learning_rate=config.scorer_learning_rate, subsample=0.8, colsample_bytree=0.8,
                            tree_method="hist", random_state=config.seed, n_jobs=cpu_count())


def best_threshold(table: pd.DataFrame, truth_boxes: int, config: DetectConfig) -> float:
    """The min_score of ``THRESHOLDS`` at which as many boxes are accepted as there are
    annotated springtails (``truth_boxes``) over the photos of ``table``, whose
    ``out_of_fold`` scores are suppressed per photo as at detection time: the threshold
    that counts without bias. (The ensemble's FOND rejection is left out: its crops are
    training data here.) Ties go to the lower threshold."""
    kept = np.concatenate([rows.index.to_numpy()[suppress(rows, rows["out_of_fold"].to_numpy(), config)]
                           for _, rows in table.groupby("photo", sort=False)])
    scores = table.loc[kept, "out_of_fold"].to_numpy()
    surplus = [abs(int((scores >= threshold).sum()) - truth_boxes) for threshold in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmin(surplus))])


def summary(table: pd.DataFrame, truth_boxes: int, config: DetectConfig) -> dict[str, Any]:
    """What the scorer was fitted on: proposals, their share on a springtail, and the share
    of annotated boxes some proposal finds at ``config.iou`` (per setting and together)."""
    found = table[table["target"] >= config.iou]
    def recall(rows: pd.DataFrame) -> float:
        return round(float(len(rows.drop_duplicates(["photo", "nearest"])) / max(1, truth_boxes)), 5)

    return {"photos": int(table["photo"].nunique()), "annotated_boxes": truth_boxes, "proposals": int(len(table)),
            "proposals_on_a_springtail": round(float(len(found) / len(table)), 5),
            "proposal_recall": recall(found),
            "proposal_recall_by_setting": [recall(found[found["setting"] == s]) for s in range(len(config.thresholds))]}
