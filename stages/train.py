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

# Before torch loads OpenMP: idle worker threads sleep instead of spinning, which on a
# busy shared CPU was measured ~20x faster (spinning threads starve each other).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from springtail.models import distributed  # noqa: E402
from springtail.common.config import from_section, load_params  # noqa: E402
from springtail.common.io import write_json  # noqa: E402
from springtail.models import checkpoint  # noqa: E402
from springtail.models.registry import create_model  # noqa: E402
from springtail.common.runtime import cpu_count, device_name, setup_torch  # noqa: E402
from springtail.common.store import load_crops  # noqa: E402
from springtail.models.training import TrainConfig, fit_inputs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model name of the registry / params.yaml")
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory")
    parser.add_argument("--out", type=Path, required=True, help="output: checkpoint directory")
    parser.add_argument("--live", type=Path, required=True, help="output: dvclive directory")
    parser.add_argument("--timing", type=Path, required=True,
                        help="output: wall-clock seconds and img/s (a metrics file, not hashed)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def dvclive_logger(directory: Path):
    """A dvclive run in ``directory`` that never touches the repository's dvc.yaml."""
    from dvclive import Live

    live = Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None)

    def log(metrics: dict) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()

    return live, log


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    params = load_params(args.params)
    train = from_section(TrainConfig, params.get("train"), "train", args.params)
    if args.model not in params:
        raise ValueError(f"{args.params}: missing section '{args.model}'")
    if train.nproc > 1 and not distributed.is_worker():
        return distributed.launch(train.nproc, __file__, argv)
    workers = train.nproc if distributed.is_worker() else 1
    torch = setup_torch(max(1, (train.num_threads or cpu_count()) // workers), seed=train.seed)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False  # cheap on these nets
    if distributed.is_worker():
        distributed.init(device_name(train.device))
    images, index = load_crops(args.crops, "train")
    model = create_model(args.model, params[args.model], train, images.shape[1])
    main_rank = distributed.rank() == 0
    live, log = dvclive_logger(args.live) if main_rank else (None, None)
    model.fit(**fit_inputs(images, index, train.val_fold), on_epoch=log)
    if main_rank:
        model.save(args.out)
        summary, timing = checkpoint.split_timing(model.summary())
        write_json(args.out / checkpoint.SUMMARY, summary)
        write_json(args.timing, timing)
        live.end()
    distributed.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
