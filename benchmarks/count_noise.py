"""How close can per-species totals come with a classifier of a given accuracy? A simulation.

    .venv/bin/python -m benchmarks.count_noise [--draws 20000] [--tolerance 0.10] [--min-boxes 20]

The detect stage counts the springtails of each species over the validation photos and
compares the totals with the experts' (``metrics/detect.json``). Even a classifier with
no bias at all moves some boxes of each species to others at random, and a species of 20
boxes is off by 10 % as soon as 3 boxes move. This draws the names of the annotated
boxes again and again (``--draws`` times) and prints the share of draws in which every
species with at least ``--min-boxes`` boxes is within ``--tolerance`` of its total:

- ``observed``: names drawn from the ensemble's confusion on the validation crops
  (``data/processed/ensemble/val.csv``: its rows for the species, FOND included);
- ``unbiased@A``: a classifier right with probability A whose wrong names are exchanged
  between species (as many boxes go from j to k as from k to j), so that every expected
  total is exact: no counting rule can remove more than the bias, and this noise is left.

On the demo, whose ``train_truth.csv`` holds the species each box really shows, it also
counts the validation boxes by that truth: the totals a classifier that never errs would
report, against the experts' consensus that the bar is measured on.

The last line is JSON. Needs the pipeline's outputs (``make repro``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.config import load_params

REPO = Path(__file__).resolve().parents[1]
ACCURACIES = (0.80, 0.85, 0.90, 0.95, 0.98, 0.99)


def confusion_rates(table: pd.DataFrame) -> np.ndarray:
    """(9, 9) row-normalised confusion (actual x predicted) of a prediction table."""
    counts = np.zeros((N_CLASSES, N_CLASSES))
    predicted = table[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    np.add.at(counts, (table["label"].to_numpy(dtype=int), predicted), 1)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def unbiased_rates(totals: np.ndarray, accuracy: float) -> np.ndarray:
    """Right with probability ``accuracy``; the wrong names are an exchange between species:
    as many boxes go from species j to k as from k to j (``flow[j, k] = x[j] x[k]``, x solved
    so that species k loses its share ``1 - accuracy``), so every expected total is exact.

    Raises:
        ValueError: a species holds half of all boxes or more (no such exchange exists).
    """
    present = np.flatnonzero(totals)
    n = totals[present].astype(float)
    if n.max() >= n.sum() / 2:
        raise ValueError(f"no unbiased exchange when one species has half the boxes: {totals.tolist()}")
    lost = (1 - accuracy) * n
    x = np.sqrt(lost)
    for _ in range(10_000):  # x[k] (sum(x) - x[k]) = lost[k], a contraction once damped
        x = 0.5 * x + 0.5 * lost / np.maximum(x.sum() - x, 1e-12)
    flow = np.outer(x, x)
    np.fill_diagonal(flow, 0.0)
    rates = np.zeros((N_CLASSES, N_CLASSES))
    rates[np.ix_(present, present)] = flow / n[:, None]
    rates[present, present] = accuracy
    return rates


def simulate(totals: np.ndarray, rates: np.ndarray, tolerance: float, min_boxes: int, draws: int,
             seed: int = 0) -> dict:
    """Share of draws with every species of >= ``min_boxes`` boxes within ``tolerance``, and
    the mean absolute relative error per such species."""
    rng = np.random.default_rng(seed)
    predicted = np.zeros((draws, N_CLASSES))
    for k in np.flatnonzero(totals):
        predicted += rng.multinomial(int(totals[k]), rates[k], size=draws)
    judged = np.flatnonzero(totals >= min_boxes)
    error = np.abs(predicted[:, judged] - totals[judged]) / totals[judged]
    return {"all_within": round(float((error <= tolerance + 1e-12).all(axis=1).mean()), 4),
            "mean_abs_error": {CODES[k]: round(float(e), 3) for k, e in zip(judged, error.mean(axis=0))}}


def true_totals(raw_dir: Path, crops: Path, val_fold: int) -> np.ndarray | None:
    """(9,) true species totals of the validation fold's annotated boxes (demo only), else None."""
    truth_path = raw_dir / "train_truth.csv"
    if not truth_path.exists():
        return None
    index = pd.read_csv(crops / "train_index.csv", dtype={"image_id": str})
    boxes = index[(index["source"] == "box") & (index["fold"] == val_fold)]
    truth = pd.read_csv(truth_path, dtype={"image_id": str}).merge(boxes[["image_id", "line"]])
    return np.bincount(truth["truth"].to_numpy(dtype=int), minlength=N_CLASSES).astype(float)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect", type=Path, default=REPO / "metrics/detect.json")
    parser.add_argument("--ensemble", type=Path, default=REPO / "data/processed/ensemble/val.csv")
    parser.add_argument("--crops", type=Path, default=REPO / "data/processed/crops")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--draws", type=int, default=20000)
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--min-boxes", type=int, default=20)
    args = parser.parse_args(argv)
    species = json.loads(args.detect.read_text())["species_totals"]
    totals = np.array([species.get(code, {}).get("annotated", 0) for code in CODES], dtype=float)
    scenarios = {"observed": confusion_rates(pd.read_csv(args.ensemble))}
    scenarios |= {f"unbiased@{a:.2f}": unbiased_rates(totals, a) for a in ACCURACIES}
    print(f"annotated boxes per species: {dict(zip(CODES, totals.astype(int).tolist()))}")
    print(f"{'names drawn from':<16} {'P(all within)':>13}  "
          f"mean |error| per species with >= {args.min_boxes} boxes")
    results = {}
    for name, rates in scenarios.items():
        results[name] = simulate(totals, rates, args.tolerance, args.min_boxes, args.draws)
        errors = " ".join(f"{c} {e:.2f}" for c, e in results[name]["mean_abs_error"].items())
        print(f"{name:<16} {results[name]['all_within']:>13.3f}  {errors}")
    summary = {"tolerance": args.tolerance, "min_boxes": args.min_boxes, "draws": args.draws,
               "all_within": {name: r["all_within"] for name, r in results.items()}}
    params = load_params(args.params)
    true = true_totals(REPO / params["data"]["raw_dir"], args.crops, params["train"]["val_fold"])
    if true is not None:
        judged = np.flatnonzero(totals >= args.min_boxes)
        error = (true[judged] - totals[judged]) / totals[judged]
        named = [f"{CODES[k]} {int(true[k])} for {int(totals[k])} ({e:+.0%})" for k, e in zip(judged, error)]
        print(f"named by their true species (demo truth), the boxes would count {', '.join(named)}")
        summary["true_species"] = {
            "all_within": bool((np.abs(error) <= args.tolerance + 1e-12).all()),
            "relative_error": {CODES[k]: round(float(e), 4) for k, e in zip(judged, error)}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
