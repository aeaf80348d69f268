"""Stage `predict@<model>`: class probabilities for the validation and test crops (see dvc.yaml).

Writes <out>/val.csv (crop_id, image_id, label, p0..p8; the checkpoint's validation fold)
and <out>/test.csv (idx, p0..p8), averaged over the 8 flips/rotations with predict.tta.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see stages/train.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import load_section  # noqa: E402
from springtail.common.io import write_csv  # noqa: E402
from springtail.common.runtime import setup_torch  # noqa: E402
from springtail.common.store import load_crops, prediction_table  # noqa: E402
from springtail.models import checkpoint  # noqa: E402
from springtail.models.inference import PredictConfig  # noqa: E402
from springtail.models.registry import load_model  # noqa: E402
from springtail.models.training import validation_mask  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model's name in params.yaml")
    parser.add_argument("--crops", type=Path, required=True, help="input: crops directory")
    parser.add_argument("--checkpoint", type=Path, required=True, help="input: checkpoint directory")
    parser.add_argument("--out", type=Path, required=True, help="output: predictions directory")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_section(PredictConfig, "predict", args.params)
    setup_torch()
    trained = checkpoint.read_config(args.checkpoint)
    if trained["name"] != args.model:
        raise ValueError(f"{args.checkpoint}: holds model '{trained['name']}', not '{args.model}'")
    model = load_model(args.checkpoint)
    images, index = load_crops(args.crops, "train")
    if images.shape[1] != trained["crop_size"]:
        raise ValueError(f"{args.crops}: crops are {images.shape[1]} px but {args.checkpoint} was "
                         f"trained on {trained['crop_size']} px (re-run train)")
    val = validation_mask(index, trained["val_fold"])
    kwargs = {"tta": config.tta, "batch_size": config.batch_size}
    val_probs = model.predict_proba(images[val], **kwargs)
    write_csv(args.out / "val.csv",
              prediction_table(index.loc[val, ["crop_id", "image_id", "label"]], val_probs))
    test_images, test_index = load_crops(args.crops, "test")
    write_csv(args.out / "test.csv",
              prediction_table(test_index[["idx"]], model.predict_proba(test_images, **kwargs)))


if __name__ == "__main__":
    main()
