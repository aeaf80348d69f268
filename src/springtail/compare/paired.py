"""Paired comparison of two revisions: the same crops, the same labels, both predictions.

Two kinds of noise are weighed against B - A:

- which photos happen to be scored: a paired bootstrap over the validation photos (over the
  crops of the public test half, independent photos), the same resamples for A and B;
- which seed trained the models: the standard deviation over seeds from
  ``benchmarks/results/seeds.json`` (``python -m benchmarks.seeds``). Two runs differing only in
  their seed differ by sqrt(2) x std on average; a difference inside SPREAD_SIGMAS times that
  is what a new seed alone could give.

The private half is never compared: choices are made on validation and public only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import PROB_COLUMNS
from springtail.compare.revision import ENSEMBLE, Revision
from springtail.scoring.bootstrap import paired_difference
from springtail.scoring.metrics import usage_rows

SPREAD_SIGMAS = 2.0  # |B - A| beyond 2 std of a seed-only difference (2 x sqrt(2) x std) exceeds it
SPLITS = {"val": "val_macro_f1", "public": "public_macro_f1"}  # split -> its key in seeds.json
MEASURE = "python -m benchmarks.seeds --seeds 0 1 2"


def _predicted(table: pd.DataFrame) -> np.ndarray:
    return table[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)


def _keyed(rev: Revision, table: pd.DataFrame, key: str, what: str) -> pd.DataFrame:
    """``table`` indexed by ``key``; a ValueError naming the revision on a missing or repeated key."""
    if key not in table.columns:
        raise ValueError(f"{rev.label}: {what} has no column '{key}' (has {', '.join(table.columns)})")
    repeated = table[key][table[key].duplicated()]
    if len(repeated):
        raise ValueError(f"{rev.label}: {what} repeats {key} {repeated.iloc[0]!r}")
    return table.set_index(key)


def _same_keys(a: Revision, b: Revision, ka: pd.Index, kb: pd.Index, what: str) -> None:
    only_a, only_b = ka.difference(kb), kb.difference(ka)
    if len(only_a) or len(only_b):
        def some(keys):
            return f" (e.g. {keys[0]!r})" if len(keys) else ""
        raise ValueError(f"{a.label} and {b.label} score different {what}: {len(only_a)} only in "
                         f"{a.name}{some(only_a)}, {len(only_b)} only in {b.name}{some(only_b)}")


def aligned_val(a: Revision, b: Revision) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, pred_a, pred_b, groups), each (N,), over the validation crops in A's order.

    Groups are the source images (column image_id), else the crops themselves.

    Raises:
        ValueError: naming both revisions when their crops (crop_id) or labels differ.
    """
    va, vb = (_keyed(r, r.val, "crop_id", "val.csv") for r in (a, b))
    for rev, table in ((a, va), (b, vb)):
        if "label" not in table.columns:
            raise ValueError(f"{rev.label}: val.csv has no column 'label'")
    _same_keys(a, b, va.index, vb.index, "validation crops (crop_id)")
    vb = vb.loc[va.index]
    differ = va.index[va["label"].to_numpy() != vb["label"].to_numpy()]
    if len(differ):
        c = differ[0]
        raise ValueError(f"{a.label} and {b.label} label the validation crops differently: "
                         f"{len(differ)} crops, e.g. crop_id {c}: {va.at[c, 'label']} in {a.name}, "
                         f"{vb.at[c, 'label']} in {b.name}")
    groups = va["image_id"].astype(str).to_numpy() if "image_id" in va.columns else va.index.to_numpy()
    return va["label"].to_numpy(dtype=int), _predicted(va), _predicted(vb), groups


def aligned_public(a: Revision, b: Revision) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(y, pred_a, pred_b) over the public test crops, or why there is none to compare.

    Raises:
        ValueError: naming both revisions when their public answers differ, or a public
            crop has no prediction.
    """
    missing = [r.label for r in (a, b) if r.solution is None]
    if missing:
        return f"no solution.csv in the raw directory at {' and '.join(missing)}"
    parts = []
    for rev in (a, b):
        part = _keyed(rev, usage_rows(rev.solution, "Public"), "idx", "solution.csv (Public)")
        if rev.class_column not in part.columns:
            raise ValueError(f"{rev.label}: solution.csv has no column '{rev.class_column}'")
        parts.append(part[rev.class_column].astype(int))
    _same_keys(a, b, parts[0].index, parts[1].index, "public test crops (idx)")
    if (parts[0] != parts[1].loc[parts[0].index]).any():
        raise ValueError(f"{a.label} and {b.label} have different public answers in solution.csv")
    if not len(parts[0]):
        return "solution.csv has no Public row"
    preds = []
    for rev in (a, b):
        test = _keyed(rev, rev.test.assign(idx=rev.test["idx"].astype(str)), "idx", "test.csv")
        absent = parts[0].index.difference(test.index)
        if len(absent):
            raise ValueError(f"{rev.label}: test.csv has no prediction for {len(absent)} public "
                             f"crops, e.g. idx {absent[0]!r}")
        preds.append(_predicted(test.loc[parts[0].index]))
    return parts[0].to_numpy(), preds[0], preds[1]


def read_spread(path: Path, model: str) -> tuple[dict[str, tuple[float, int]], str]:
    """Seed-to-seed standard deviation per split: ({"val": (std, n_seeds), ...}, note).

    ``path`` is ``benchmarks.seeds``' study: ``models.<model>.<split>_macro_f1.{std, values}``,
    the ensemble's under ``ensemble`` (or ``models.ensemble``). A split whose std is null (one
    seed) is left out. An empty dict and a note saying how to measure it when ``path`` is absent or has no entry
    for ``model``. Raises ValueError naming ``path`` when it is not JSON of the expected shape.
    """
    if not path.exists():
        return {}, f"seed-to-seed spread unknown: no {path}; measure it with `{MEASURE}`"
    try:
        study = json.loads(path.read_text())
        entry = (study.get("models") or {}).get(model)
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{path}: not a seeds file ({{'models': {{name: ...}}}} expected): {err}") from err
    if entry is None and model == ENSEMBLE:  # benchmarks.seeds keeps the ensemble beside the models
        entry = study.get(ENSEMBLE)
    if not entry:
        return {}, f"seed-to-seed spread unknown: {path} has no '{model}'; measure it with `{MEASURE}`"
    spread = {}
    for split, key in SPLITS.items():
        scores = entry.get(key) or {}
        if scores.get("std") is not None:
            spread[split] = (float(scores["std"]), len(scores.get("values") or []))
    return spread, f"seed-to-seed spread from {path}"


def judge(result: dict, spread: tuple[float, int] | None, note: str) -> dict:
    """``result`` (of paired_difference) with the verdicts added: excludes_zero, seed_std,
    n_seeds, seed_spread (SPREAD_SIGMAS x sqrt(2) x std), exceeds_seed_spread (None: unknown)
    and seed_verdict (a sentence)."""
    out = dict(result, excludes_zero=bool(result["low"] > 0 or result["high"] < 0))
    if spread is None:
        return out | {"seed_std": None, "n_seeds": 0, "seed_spread": None,
                      "exceeds_seed_spread": None, "seed_verdict": note}
    std, n_seeds = spread
    threshold = SPREAD_SIGMAS * math.sqrt(2) * std
    exceeds = abs(result["difference"]) > threshold
    basis = f"{SPREAD_SIGMAS:g} x sqrt(2) x std {std:.3f} over {n_seeds} seeds"
    verdict = (f"|B - A| = {abs(result['difference']):.3f} "
               + (f"exceeds the seed-to-seed spread ±{threshold:.3f} ({basis})" if exceeds
                  else f"is inside the seed-to-seed spread ±{threshold:.3f} ({basis}): decides nothing"))
    return out | {"seed_std": std, "n_seeds": n_seeds, "seed_spread": threshold,
                  "exceeds_seed_spread": exceeds, "seed_verdict": verdict}


def _unknown(spread: dict, note: str, split: str) -> str:
    """Why a split has no seed spread: no study at all (``note``), or none for this split."""
    return note if not spread else (f"seed-to-seed spread unknown: the seeds file has no std of "
                                    f"{SPLITS[split]} (one seed?)")


def compare(a: Revision, b: Revision, seeds: Path, model: str, n_boot: int = 1000,
            level: float = 0.9, seed: int = 0) -> dict:
    """B against A on validation and, when both have the answers, the public test half.

    Returns:
        model, level, n_boot, a and b ({rev, commit}), val (paired_difference's keys plus
        groups and :func:`judge`'s), public (the same, or None), public_note (why it is None),
        seeds_found (a seed study with this model's spread was read) and seeds_note.
    Raises:
        ValueError: as :func:`aligned_val`, :func:`aligned_public`, :func:`read_spread`.
    """
    spread, note = read_spread(seeds, model)
    y, pred_a, pred_b, groups = aligned_val(a, b)
    val = paired_difference(y, pred_a, pred_b, groups, n_boot=n_boot, level=level, seed=seed)
    val["groups"] = "image_id" if "image_id" in a.val.columns else "crop_id"
    out = {"model": model, "level": level, "n_boot": n_boot,
           "a": {"rev": a.name, "commit": a.commit}, "b": {"rev": b.name, "commit": b.commit},
           "val": judge(val, spread.get("val"), _unknown(spread, note, "val")), "public": None,
           "public_note": "",
           "seeds_found": bool(spread), "seeds_note": note}
    public = aligned_public(a, b)
    if isinstance(public, str):
        out["public_note"] = public
    else:
        y, pred_a, pred_b = public
        result = paired_difference(y, pred_a, pred_b, np.arange(len(y)), n_boot=n_boot, level=level,
                                   seed=seed) | {"groups": "idx"}
        out["public"] = judge(result, spread.get("public"), _unknown(spread, note, "public"))
    return out
