"""Stage `detector`: the proposal scorer, fitted on the training folds' whole photos (see dvc.yaml).

Every proposal (dark object on the bright field, under each proposal setting) of every training
photo, with the IoU of the annotated box it overlaps most: an XGBoost regression of that IoU from
the proposal's size, shape, darkness and colour. Writes <out>/{scorer,settings}.json, <metrics>, <timing>.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import write_json  # noqa: E402
from springtail.common.policy import POLICY_KEYS, ErrorPolicy, SkipLog  # noqa: E402
from springtail.common.runtime import RuntimeConfig, setup_torch  # noqa: E402
from springtail.detect.candidates import DetectConfig  # noqa: E402
from springtail.detect.fitting import train_detector  # noqa: E402
from springtail.models.training import ValidationFold  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw layout (train/*.jpg)")
    parser.add_argument("--labels", type=Path, required=True, help="input: labels.csv (the annotated boxes)")
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory (the folds)")
    parser.add_argument("--out", type=Path, required=True, help="output: the scorer's directory")
    parser.add_argument("--metrics", type=Path, required=True, help="output: detector.json")
    parser.add_argument("--timing", type=Path, required=True, help="output: seconds")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(DetectConfig, "detect", args.params)
    fold = load_section(ValidationFold, "train", args.params, keys=("val_fold",))
    log = SkipLog(load_section(ErrorPolicy, "data", args.params, POLICY_KEYS))
    setup_torch()
    runtime = load_section(RuntimeConfig, "runtime", args.params)
    scorer, metrics, timing = train_detector(args.raw_dir / "train", args.labels, args.crops, fold.val_fold,
                                             config, log, runtime.workers)
    scorer.save(args.out)
    write_json(args.metrics, metrics)
    write_json(args.timing, timing)


if __name__ == "__main__":
    main()
