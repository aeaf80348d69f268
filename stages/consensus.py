"""Stage `consensus`: four experts' votes -> one label per box (see dvc.yaml).

Reads every <raw-dir>/train/*.txt, applies consensus.method, and writes the
per-box labels, the disputed boxes and metrics. <raw-dir>/train_truth.csv,
present only in synthetic data, is read to score the methods, never to label.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import terminate_cleanly, write_csv, write_json  # noqa: E402
from springtail.common.policy import POLICY_KEYS, ErrorPolicy, SkipLog  # noqa: E402
from springtail.labels.build import label_raw  # noqa: E402
from springtail.labels.consensus import ConsensusConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw layout (train/*.txt)")
    parser.add_argument("--labels", type=Path, required=True, help="output: labels.csv")
    parser.add_argument("--disputed", type=Path, required=True, help="output: disputed.csv")
    parser.add_argument("--metrics", type=Path, required=True, help="output: consensus.json")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(ConsensusConfig, "consensus", args.params)
    log = SkipLog(load_section(ErrorPolicy, "data", args.params, POLICY_KEYS))
    labels, disputed, metrics = label_raw(args.raw_dir, config, log)
    write_csv(args.labels, labels)  # written only once everything is computed
    write_csv(args.disputed, disputed)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    with terminate_cleanly():  # SIGTERM unwinds: temporary outputs are removed
        main()
