"""Stage `bundle`: the trained pipeline as one self-contained model folder (see dvc.yaml).

Copies the members the ensemble selected, its fitted combiner, the detector and the species
totals' calibration into <out>,
with the crop and predict settings, the class codes, a model card (README.md) and a
manifest (package versions, the sha256 of every file, the params and data it came from,
the scores with their intervals). `springtail-identify --model <out>` and
`springtail-count --model <out>` read nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.bundle.build import write_bundle  # noqa: E402
from springtail.bundle.manifest import sha256  # noqa: E402
from springtail.common.config import load_params, load_section  # noqa: E402
from springtail.common.io import read_json  # noqa: E402
from springtail.crops.cutting import CropsConfig  # noqa: E402
from springtail.models.inference import PredictConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, required=True, help="input: one checkpoint per model")
    parser.add_argument("--ensemble", type=Path, required=True, help="input: ensemble directory")
    parser.add_argument("--detector", type=Path, required=True, help="input: the detector stage's scorer")
    parser.add_argument("--calibration", type=Path, required=True,
                        help="input: the detect stage's calibration.json (species totals)")
    parser.add_argument("--labels", type=Path, required=True, help="input: labels.csv (recorded by digest)")
    parser.add_argument("--metrics", type=Path, nargs="+", required=True,
                        help="input: metrics files to carry (ensemble.json, detector.json, detect.json)")
    parser.add_argument("--out", type=Path, required=True, help="output: the bundle folder")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params(args.params)
    source = {"raw_dir": params["data"]["raw_dir"], "labels_sha256": sha256(args.labels),
              "val_fold": params["train"]["val_fold"]}
    write_bundle(args.out, models_dir=args.models_dir, ensemble_dir=args.ensemble, detector_dir=args.detector,
                 calibration=args.calibration,
                 crops=load_section(CropsConfig, "crops", args.params),
                 predict=load_section(PredictConfig, "predict", args.params),
                 metrics={path.stem: read_json(path) for path in args.metrics}, source=source)


if __name__ == "__main__":
    main()
