"""Stage `review`: the model as a fifth opinion, training targets and the review list (see dvc.yaml).

A logistic regression on frozen CNN features predicts every training crop out of fold.
Writes <opinion> (crop_id, m0..m8), <targets> (crop_id, label, p0..p8: what the models
train on; the consensus unless review.relabel), <review> (disputed boxes, the likeliest
mislabelled first) and <metrics>. <raw-dir>/train_truth.csv, present only in synthetic
data, is read to score the targets, never to make them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see stages/train.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

import pandas as pd  # noqa: E402

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import write_csv, write_json  # noqa: E402
from springtail.common.runtime import setup_torch  # noqa: E402
from springtail.models.training import ValidationFold  # noqa: E402
from springtail.review.build import build_review  # noqa: E402
from springtail.review.opinion import ReviewConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw layout (train_truth.csv, if any)")
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory")
    parser.add_argument("--labels", type=Path, required=True, help="input: labels.csv")
    parser.add_argument("--opinion", type=Path, required=True, help="output: opinion.csv")
    parser.add_argument("--targets", type=Path, required=True, help="output: targets.csv")
    parser.add_argument("--review", type=Path, required=True, help="output: review.csv")
    parser.add_argument("--metrics", type=Path, required=True, help="output: review.json")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(ReviewConfig, "review", args.params)
    fold = load_section(ValidationFold, "train", args.params, keys=("val_fold",))
    setup_torch(seed=0)
    labels = pd.read_csv(args.labels, dtype={"image_id": str})
    truth_path = args.raw_dir / "train_truth.csv"
    truth = pd.read_csv(truth_path, dtype={"image_id": str}) if truth_path.exists() else None
    result = build_review(args.crops, labels, config, fold.val_fold, truth)
    write_csv(args.opinion, result.opinion)
    write_csv(args.targets, result.targets)
    write_csv(args.review, result.review)
    write_json(args.metrics, result.metrics)


if __name__ == "__main__":
    main()
