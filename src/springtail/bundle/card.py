"""The model card (README.md of the bundle), rendered from the run's own files: what the
model identifies, how it was trained and validated, its scores with their 90 % intervals,
its known limits and how to run it. No figure in it is typed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from springtail.bundle.manifest import NAME
from springtail.common.classes import CLASSES, CODES, N_CLASSES

RUN = """```bash
pip install -e <springtail checkout>        # or `make env` in it: the package and its pinned dependencies
springtail-identify --model {name} --images my_crops/ --out species.csv
springtail-count --model {name} --photos my_photos/ --out counts/
```"""


def _interval(scores: dict[str, Any], key: str) -> str:
    ci = scores.get(f"{key}_ci90")
    value = scores.get(key)
    if value is None:
        return "not scored"
    return f"{value:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else f"{value:.3f}"


def confused_pairs(val: pd.DataFrame, top: int = 3) -> list[str]:
    """The ``top`` most frequent mistakes on the validation crops (out of fold), as text."""
    y = val["label"].to_numpy(int)
    pred = val[[f"p{k}" for k in range(N_CLASSES)]].to_numpy(float).argmax(axis=1)
    counts = np.zeros((N_CLASSES, N_CLASSES), int)
    np.add.at(counts, (y, pred), 1)
    np.fill_diagonal(counts, 0)
    order = np.argsort(-counts, axis=None, kind="stable")[:top]
    pairs = [np.unravel_index(i, counts.shape) for i in order]
    support = np.bincount(y, minlength=N_CLASSES)
    return [f"{CODES[a]} taken for {CODES[b]}: {counts[a, b]} of {support[a]} validation crops"
            for a, b in pairs if counts[a, b]]


def _num(value: float | None, fmt: str = ".3f") -> str:
    """A score, or "-" where there was nothing to score (no detection: no precision)."""
    return "-" if value is None else format(value, fmt)


def _scores(metrics: dict[str, Any]) -> list[str]:
    ens, det = metrics.get("ensemble", {}), metrics.get("detect", {})
    rows = ["| score | value [90 % interval] |", "|---|---|",
            f"| validation macro F1 (nested out of fold, {ens.get('n_val', '?')} crops) | "
            f"{_interval(ens, 'val_macro_f1')} |",
            f"| test macro F1, public half | {_interval(ens, 'public_macro_f1')} |",
            f"| test macro F1, private half | {_interval(ens, 'private_macro_f1')} |"]
    if det:
        rows += [f"| detection recall / precision at IoU {det['iou']} ({det['photos']} validation photos) | "
                 f"{_num(det.get('recall'))} / {_num(det.get('precision'))} |",
                 f"| count error per photo (mean absolute) | {_num(det.get('count_mae_per_photo'))} |"]
    per_class = ens.get("per_class_f1", {})
    if per_class:
        rows += ["", "Validation F1 per class: " + ", ".join(f"{c} {v:.2f}" for c, v in per_class.items()) + "."]
    return rows


def _totals(detect: dict[str, Any]) -> str:
    counts, estimates = detect.get("species_totals", {}), detect.get("species_estimates", {})
    if not counts:
        return "Per-species totals were not measured."
    errors = ", ".join(f"{code} {100 * t['relative_error']:+.0f} %" if t.get("relative_error") is not None
                       else f"{code} {t.get('predicted')} found, none annotated" for code, t in counts.items())
    text = (f"Per-species plain counts over the {detect['photos']} validation photos, detected against "
            f"annotated: {errors}: a total moves by several animals when a few boxes are misnamed.")
    if estimates:
        text += (" springtail-count's `totals.csv` corrects them and gives a 90 % interval; on the same "
                 "photos (which also calibrated it, so this is optimistic): " + ", ".join(
                     f"{code} {e['estimate']:.0f} [{e['low']}, {e['high']}] for {e['annotated']}"
                     for code, e in estimates.items()) + ". Report the interval, and check `boxes_to_check` by hand.")
    return text


def model_card(members: list[str], configs: dict[str, dict], summaries: dict[str, dict], weights: dict[str, Any],
               val: pd.DataFrame, metrics: dict[str, Any], source: dict[str, Any]) -> str:
    """The bundle's README.md."""
    lines = [f"# {NAME}: springtail (Collembola) identification and counting", "",
             "Identifies the springtail in a microscope crop as one of 9 classes, and finds, names and counts "
             "the springtails of whole photos. Self-contained: the files below are all it reads.", "",
             "## Classes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, meaning in CLASSES]
    lines += ["", "## How to run", "", RUN.format(name=NAME), "",
              "Every file is checked against `manifest.json` (sha256) before anything is loaded.", "",
              "## How it was trained and validated", ""]
    for name in members:
        cfg, summ = configs[name], summaries[name]
        lines.append(f"- `{name}`: {cfg['model'].get('arch', cfg['kind'])}, {cfg['crop_size']} px crops, "
                     f"{summ.get('epochs_run') or cfg['model'].get('epochs') or cfg['train']['epochs']} epochs, pretrained: {cfg['model'].get('pretrained')}, "
                     f"precision {summ.get('precision', '?')}")
    lines += [f"- combined by `{weights['method']}` over {', '.join(members)} (chosen by forward selection "
              f"from {', '.join(weights['models'])} on the validation fold, out of fold)",
              f"- labels: the experts' consensus of `{source.get('raw_dir', '?')}`; validation fold "
              f"{configs[members[0]]['val_fold']}, grouped by source photo", "",
              "## Scores", ""] + _scores(metrics)
    lines += ["", "## Known limits", ""]
    if "synthetic" in str(source.get("raw_dir", "")):
        lines.append("- Trained on the synthetic demo data set: its scores say nothing of real photos.")
    lines += [f"- Most frequent mistakes: {'; '.join(confused_pairs(val)) or 'none'}.",
              f"- {_totals(metrics.get('detect', {}))}", ""]
    return "\n".join(lines)
