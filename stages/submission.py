"""Stage `submission`: the Kaggle submission file and the ensemble's scores (see dvc.yaml).

Writes <out> (idx,gt: every idx of <raw-dir>/sample_submission.csv once, in its
order, checked before writing), <metrics> (out-of-fold val macro F1, per-class
F1, gain over the best single model, and public/private macro F1 when
<raw-dir>/solution.csv exists; each macro F1 with its 90 % bootstrap interval,
<key>_ci90) and <plots>/{confusion,per_class_f1}.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

import pandas as pd  # noqa: E402

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import read_json, write_csv, write_json  # noqa: E402
from springtail.common.store import read_predictions  # noqa: E402
from springtail.scoring.metrics import ensemble_metrics, evaluate_predictions  # noqa: E402
from springtail.scoring.submission import SubmissionConfig, build_submission  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="input: sample_submission.csv")
    parser.add_argument("--ensemble", type=Path, required=True, help="input: ensemble directory")
    parser.add_argument("--out", type=Path, required=True, help="output: submission CSV")
    parser.add_argument("--metrics", type=Path, required=True, help="output: ensemble metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="output: plots directory")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(SubmissionConfig, "submission", args.params)
    sample_path, test_path = args.raw_dir / "sample_submission.csv", args.ensemble / "test.csv"
    sample = pd.read_csv(sample_path, dtype={"idx": str})
    test = read_predictions(test_path)
    submission = build_submission(test, sample, config.class_column, str(test_path), str(sample_path))
    write_csv(args.out, submission)
    val = read_predictions(args.ensemble / "val.csv")
    solution_path = args.raw_dir / "solution.csv"
    solution = pd.read_csv(solution_path, dtype={"idx": str}) if solution_path.exists() else None
    metrics, confusion, per_class = evaluate_predictions(val, test, solution, config.class_column,
                                                         str(solution_path))
    write_json(args.metrics, ensemble_metrics(metrics, read_json(args.ensemble / "weights.json")))
    write_csv(args.plots / "confusion.csv", confusion)
    write_csv(args.plots / "per_class_f1.csv", per_class)


if __name__ == "__main__":
    main()
