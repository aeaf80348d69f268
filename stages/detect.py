"""Stage `detect`: springtails found and counted in the validation fold's whole photos (see dvc.yaml).

Proposals (dark objects on the bright field) scored by the detector, the likely springtails named by
the ensemble (FOND: debris), scored against the experts' boxes: <out>/{boxes,counts,totals}.csv,
<out>/calibration.json (what species totals are corrected with), <metrics>, <plots>/counts.csv, <timing>.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see stages/train.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import write_csv, write_json  # noqa: E402
from springtail.common.policy import POLICY_KEYS, ErrorPolicy, SkipLog  # noqa: E402
from springtail.common.runtime import RuntimeConfig, setup_torch  # noqa: E402
from springtail.common.store import read_predictions  # noqa: E402
from springtail.crops.cutting import CropsConfig  # noqa: E402
from springtail.detect.build import detect_validation  # noqa: E402
from springtail.detect.candidates import DetectConfig  # noqa: E402
from springtail.detect.scorer import BoxScorer  # noqa: E402
from springtail.identify.trained import TrainedPipeline  # noqa: E402
from springtail.models.inference import PredictConfig  # noqa: E402
from springtail.models.training import ValidationFold  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw layout (train/*.jpg)")
    parser.add_argument("--labels", type=Path, required=True, help="input: labels.csv (the annotated boxes)")
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory (the folds)")
    parser.add_argument("--models-dir", type=Path, required=True, help="input: one checkpoint per model")
    parser.add_argument("--ensemble", type=Path, required=True, help="input: ensemble directory (its combiner.json)")
    parser.add_argument("--detector", type=Path, required=True, help="input: the detector stage's scorer")
    parser.add_argument("--out", type=Path, required=True, help="output: detections directory")
    parser.add_argument("--metrics", type=Path, required=True, help="output: detect.json")
    parser.add_argument("--plots", type=Path, required=True, help="output: plots directory")
    parser.add_argument("--timing", type=Path, required=True, help="output: seconds")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(DetectConfig, "detect", args.params)
    fold = load_section(ValidationFold, "train", args.params, keys=("val_fold",))
    log = SkipLog(load_section(ErrorPolicy, "data", args.params, POLICY_KEYS))
    setup_torch()
    pipeline = TrainedPipeline.from_parts(args.models_dir, args.ensemble / "combiner.json",
                                          load_section(CropsConfig, "crops", args.params),
                                          load_section(PredictConfig, "predict", args.params))
    scorer = BoxScorer.load(args.detector, config)
    val = read_predictions(args.ensemble / "val.csv")
    runtime = load_section(RuntimeConfig, "runtime", args.params)
    result = detect_validation(args.raw_dir / "train", args.labels, args.crops, fold.val_fold, val, pipeline,
                               scorer, log, runtime.workers)
    for path, table in ((args.out / "boxes.csv", result.candidates), (args.out / "counts.csv", result.counts),
                        (args.out / "totals.csv", result.totals), (args.plots / "counts.csv", result.plot)):
        write_csv(path, table)
    result.calibration.save(args.out / "calibration.json")
    write_json(args.metrics, result.metrics)
    write_json(args.timing, result.timing)


if __name__ == "__main__":
    main()
