"""The detector's accepted boxes on the validation photos, with all nine class probabilities.

    .venv/bin/python -m benchmarks.quantify_boxes [--run .] [--out benchmarks/results/quantify/boxes-default.csv]

The species-totals benchmark (``benchmarks.quantify``) needs the ensemble's nine
probabilities of every box the detector accepted on the validation photos, and which
annotated box each found. Reads the ``detect`` stage's ``data/processed/detections/boxes.csv``
of the run under ``--run`` (its ``p_<class>`` columns, rounded to 6 digits) and writes one row
per accepted box: ``image_id``, ``line`` (the annotated box it matches at the detector's IoU,
VOC style as ``detect.evaluate.match``; -1 for a false box), ``p0``..``p8``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import PROB_COLUMNS
from springtail.common.io import write_csv

REPO = Path(__file__).resolve().parents[1]


def matched_lines(detected: pd.DataFrame, truth: pd.DataFrame, rows: pd.DataFrame, threshold: float) -> np.ndarray:
    """(n,) the annotation ``line`` (of ``rows``, in ``truth``'s order) each detection of one
    photo takes as the detection metrics match them, -1 for none."""
    from springtail.detect.evaluate import matched_truth

    taken = matched_truth(detected, truth, threshold)
    return np.where(taken >= 0, rows["line"].to_numpy()[np.maximum(taken, 0)], -1)


def collect(run: Path) -> pd.DataFrame:
    """image_id, line, p0..p8 of every accepted box on the validation photos of ``run``, from
    its detect stage's boxes.csv (which keeps each box's nine probabilities, p_<class>)."""
    from springtail.common.config import load_section
    from springtail.common.decode import image_size
    from springtail.detect.annotated import annotated_boxes
    from springtail.detect.candidates import DetectConfig
    from springtail.detect.photos import PROB_CODES

    params = run / "params.yaml"
    config = load_section(DetectConfig, "detect", params)
    raw = load_section_raw_dir(params, run)
    labels = pd.read_csv(run / "data/interim/labels.csv", dtype={"image_id": str})
    boxes = pd.read_csv(run / "data/processed/detections/boxes.csv", keep_default_na=False)
    accepted = boxes[boxes["accepted"].astype(str) == "True"]
    tables = []
    for name, found in accepted.groupby("photo", sort=True):
        photo = Path(name).stem
        found = found.reset_index(drop=True)
        rows = labels[labels["image_id"] == photo]
        truth = annotated_boxes(labels, photo, image_size(raw / "train" / name))
        table = pd.DataFrame(found[list(PROB_CODES)].to_numpy(float), columns=list(PROB_COLUMNS))
        table.insert(0, "line", matched_lines(found, truth, rows, config.iou))
        table.insert(0, "image_id", photo)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def load_section_raw_dir(params: Path, run: Path) -> Path:
    """The run's raw data folder (``data.raw_dir``, relative to the run)."""
    from springtail.common.config import load_params

    return run / load_params(params)["data"]["raw_dir"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO, help="a checkout with the pipeline's outputs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/quantify/boxes-default.csv")
    args = parser.parse_args(argv)
    table = collect(args.run.resolve())
    write_csv(args.out, table)
    print(f"{len(table)} accepted boxes, {int((table['line'] >= 0).sum())} matched -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
