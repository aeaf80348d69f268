"""Stage `train@<model>`: fit one registered model on the training folds (see dvc.yaml).

Writes <out>/model.safetensors (+ model.ubj for XGBoost), config.yaml (the
resolved configuration) and summary.json; per-epoch metrics go to dvclive in
<live>. With train.nproc > 1 the stage re-launches itself under torchrun.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep instead of spinning (~20x faster on a busy CPU).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import from_section, load_params  # noqa: E402
from springtail.common.runtime import RuntimeConfig  # noqa: E402
from springtail.common.store import load_crops, read_targets  # noqa: E402
from springtail.models import checkpoint, distributed  # noqa: E402
from springtail.models.registry import create_model  # noqa: E402
from springtail.models.session import epoch_log, start_process  # noqa: E402
from springtail.models.training import TrainConfig, fit_inputs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model name of the registry / params.yaml")
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory")
    parser.add_argument("--out", type=Path, required=True, help="output: checkpoint directory")
    parser.add_argument("--targets", type=Path, required=True, help="input: targets.csv (training labels)")
    parser.add_argument("--live", type=Path, required=True, help="output: dvclive directory")
    parser.add_argument("--timing", type=Path, required=True, help="output: seconds and img/s (not hashed)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    params = load_params(args.params)
    train = from_section(TrainConfig, params.get("train"), "train", args.params)
    if args.model not in params:
        raise ValueError(f"{args.params}: missing section '{args.model}'")
    if train.nproc > 1 and not distributed.is_worker():
        return distributed.launch(train.nproc, __file__, argv)
    start_process(train)
    images, index = load_crops(args.crops, "train")
    model = create_model(args.model, params[args.model], train, images.shape[1])
    with epoch_log(args.live, enabled=distributed.rank() == 0) as log:
        model.fit(**fit_inputs(images, index, train.val_fold, read_targets(args.targets)), on_epoch=log,
                  progress=from_section(RuntimeConfig, params.get("runtime"), "runtime", args.params).progress)
    if distributed.rank() == 0:
        checkpoint.save_fitted(model, args.out, args.timing)
    distributed.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
