"""Stage `ensemble`: combine the enabled models' validation/test probabilities (see dvc.yaml).

Reads <predictions>/<model>/{val,test}.csv for each model of the `models`
param. Writes <out>/val.csv (out-of-fold ensemble probabilities over the
validation crops), <out>/test.csv (weights fitted on all of them) and
<out>/weights.json (the method and its weights or coefficients) and <out>/combiner.json
(that fitted combiner as data: what the detect stage and the model bundle apply).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import load_models, load_section  # noqa: E402
from springtail.common.io import write_csv, write_json  # noqa: E402
from springtail.common.store import read_predictions  # noqa: E402
from springtail.scoring.ensemble import EnsembleConfig, build_ensemble  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=Path, required=True, help="input: one directory per model")
    parser.add_argument("--out", type=Path, required=True, help="output: ensemble directory")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(EnsembleConfig, "ensemble", args.params)
    models = load_models(args.params)
    vals = {m: read_predictions(args.predictions / m / "val.csv") for m in models}
    tests = {m: read_predictions(args.predictions / m / "test.csv") for m in models}
    result = build_ensemble(vals, tests, config)
    write_csv(args.out / "val.csv", result.val)
    write_csv(args.out / "test.csv", result.test)
    write_json(args.out / "weights.json", result.report)
    result.combiner.save(args.out / "combiner.json", result.report["selected"])


if __name__ == "__main__":
    main()
