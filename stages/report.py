"""Stage `report`: one self-contained HTML page for people to look at (see dvc.yaml).

Writes <out> (scores, disputed boxes, confident validation errors, uncertain test
crops and class-activation heatmaps, images embedded) and, for `dvc plots`,
<plots>/per_class_f1.csv (class, model, f1: every model and the ensemble) and
<plots>/class_distribution.csv (class, stage, count: votes to predicted test crops); the species
totals of the validation photos from the detect stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep rather than spin (see stages/train.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from springtail.common.config import load_models, load_section, to_dict  # noqa: E402
from springtail.common.io import atomic_path, read_json, write_csv  # noqa: E402
from springtail.common.runtime import setup_torch  # noqa: E402
from springtail.models.registry import load_model  # noqa: E402
from springtail.report.build import ReportConfig, ReportData, build_report, explained_models  # noqa: E402
from springtail.report.totals import totals_section  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory")
    parser.add_argument("--labels", type=Path, required=True, help="input: labels.csv")
    parser.add_argument("--predictions", type=Path, required=True, help="input: one directory per model")
    parser.add_argument("--ensemble", type=Path, required=True, help="input: ensemble directory")
    parser.add_argument("--review", type=Path, required=True, help="input: review.csv")
    parser.add_argument("--models-dir", type=Path, required=True, help="input: one checkpoint per model")
    parser.add_argument("--totals", type=Path, required=True,
                        help="input: the detect stage's totals.csv (validation photos as one sample)")
    parser.add_argument("--detect-metrics", type=Path, required=True,
                        help="input: detect.json (the experts' boxes per species on those photos)")
    parser.add_argument("--out", type=Path, required=True, help="output: report HTML")
    parser.add_argument("--plots", type=Path, required=True, help="output: plots directory")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(ReportConfig, "report", args.params)
    models = load_models(args.params)
    explained = explained_models(config, models, args.params)
    setup_torch()
    data = ReportData.read(args.crops, args.labels, args.predictions, args.ensemble, args.review, models)
    settings = yaml.safe_dump({"report": to_dict(config), "models": models}, sort_keys=False)
    annotated = {code: entry["annotated"] for code, entry in read_json(args.detect_metrics)["species_estimates"].items()}
    totals = totals_section(pd.read_csv(args.totals), annotated)
    report = build_report(data, {m: load_model(args.models_dir / m) for m in explained}, config, settings, totals)
    with atomic_path(args.out) as tmp:
        tmp.write_text(report.html, encoding="utf-8")
    write_csv(args.plots / "per_class_f1.csv", report.per_class_f1)
    write_csv(args.plots / "class_distribution.csv", report.class_distribution)


if __name__ == "__main__":
    main()
