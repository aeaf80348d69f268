"""Stage `consensus`: four experts' votes -> one label per box (see dvc.yaml).

Reads every <raw-dir>/train/*.txt, applies consensus.method, and writes the
per-box labels, the disputed boxes and metrics. <raw-dir>/train_truth.csv,
present only in synthetic data, is read to score the methods, never to label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from springtail.labels.annotations import read_train_annotations
from springtail.common.config import load_section, to_dict
from springtail.labels.consensus import ConsensusConfig
from springtail.common.decode import image_size
from springtail.common.io import terminate_cleanly, write_csv, write_json
from springtail.labels.build import build_labels, disputed_table, truth_scores
from springtail.common.policy import DataError, SkipLog, load_policy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw layout (train/*.txt)")
    parser.add_argument("--labels", type=Path, required=True, help="output: labels.csv")
    parser.add_argument("--disputed", type=Path, required=True, help="output: disputed.csv")
    parser.add_argument("--metrics", type=Path, required=True, help="output: consensus.json")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def image_sizes(train_dir: Path, image_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Header sizes of the images that exist (for the disputed boxes' pixel keys)."""
    sizes = {}
    for image_id in image_ids:
        try:
            sizes[image_id] = image_size(train_dir / f"{image_id}.jpg")
        except DataError:  # no image, no pixel key: the crops stage judges images
            pass
    return sizes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(ConsensusConfig, "consensus", args.params)
    log = SkipLog(load_policy(args.params))
    boxes, files = read_train_annotations(args.raw_dir, log)
    labels, metrics = build_labels(boxes, config)
    truth_path = args.raw_dir / "train_truth.csv"
    if truth_path.exists():
        truth = pd.read_csv(truth_path, dtype={"image_id": str})
        metrics.update(truth_scores(boxes, truth, config))
    metrics.update({"files": files, "skipped": log.to_dict(), "config": to_dict(config)})
    disputed_ids = sorted(set(labels.loc[labels["agreement"] != "4", "image_id"]))
    disputed = disputed_table(labels, image_sizes(args.raw_dir / "train", disputed_ids))
    write_csv(args.labels, labels)  # written only once everything is computed
    write_csv(args.disputed, disputed)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    with terminate_cleanly():  # SIGTERM unwinds: temporary outputs are removed
        main()
