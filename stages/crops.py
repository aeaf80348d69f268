"""Stage `crops`: consensus labels and raw images -> square uint8 crop shards (see dvc.yaml).

Writes <out>/train_NNN.npy, train_index.csv, test_NNN.npy, test_index.csv and
crops.yaml (the resolved config); <out> is replaced atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

import pandas as pd  # noqa: E402

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import terminate_cleanly, write_json  # noqa: E402
from springtail.common.policy import POLICY_KEYS, ErrorPolicy, SkipLog  # noqa: E402
from springtail.common.runtime import RuntimeConfig  # noqa: E402
from springtail.crops.build import build_crops  # noqa: E402
from springtail.crops.cutting import CropsConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw layout (train/, test/)")
    parser.add_argument("--labels", type=Path, required=True, help="input: labels.csv")
    parser.add_argument("--out", type=Path, required=True, help="output: crops directory")
    parser.add_argument("--metrics", type=Path, required=True, help="output: crops.json (the same on every run)")
    parser.add_argument("--timing", type=Path, required=True, help="output: seconds, workers, peak RSS")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(CropsConfig, "crops", args.params)
    log = SkipLog(load_section(ErrorPolicy, "data", args.params, POLICY_KEYS))
    labels = pd.read_csv(args.labels, dtype={"image_id": str})
    runtime = load_section(RuntimeConfig, "runtime", args.params)
    metrics, timing = build_crops(args.raw_dir, labels, args.out, config, log, runtime.workers)
    write_json(args.metrics, metrics)
    write_json(args.timing, timing)


if __name__ == "__main__":
    with terminate_cleanly():  # SIGTERM unwinds: temporary outputs are removed
        main()
