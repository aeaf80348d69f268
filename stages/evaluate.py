"""Stage `evaluate@<model>`: score one model's predictions (see dvc.yaml).

Writes <metrics> (val_macro_f1, per_class_f1, n_val, and public/private macro
F1 when <raw-dir>/solution.csv exists; each macro F1 with its 90 % bootstrap
interval, <key>_ci90), <plots>/confusion.csv and
<plots>/per_class_f1.csv. The answers are read only here, only to score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

import pandas as pd  # noqa: E402

from springtail.common.io import write_csv, write_json  # noqa: E402
from springtail.common.store import read_predictions  # noqa: E402
from springtail.scoring.metrics import evaluate_predictions  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="input: raw layout (solution.csv if any)")
    parser.add_argument("--predictions", type=Path, required=True, help="input: val.csv, test.csv")
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="output: plots directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    val = read_predictions(args.predictions / "val.csv")
    test = read_predictions(args.predictions / "test.csv")
    solution_path = args.raw_dir / "solution.csv"
    solution = pd.read_csv(solution_path, dtype={"idx": str}) if solution_path.exists() else None
    metrics, confusion, per_class = evaluate_predictions(val, test, solution,
                                                         solution_name=str(solution_path))
    write_json(args.metrics, metrics)
    write_csv(args.plots / "confusion.csv", confusion)
    write_csv(args.plots / "per_class_f1.csv", per_class)


if __name__ == "__main__":
    main()
