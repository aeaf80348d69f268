"""springtail-identify: a folder of crop images in, one row per image out.

    springtail-identify --images my_crops/ --out species.csv [--model DIR] [--unsure-below 0.6]

Each image (JPEG or PNG, any size, one springtail or background) is padded to a square
and resized exactly as the pipeline's test crops, every selected model of the trained
ensemble predicts it, and the ensemble's combiner weighs them. The CSV has: file,
predicted (class code), probability (of that class), unsure (probability below
``--unsure-below``), p_<CODE> for each class, and error (why a file could not be read;
its other columns are then empty). The model is a bundle folder (the ``bundle`` stage's
output, ``models/springtail-model`` of a trained checkout by default, or one fetched with
``dvc artifacts get <repo> springtail-model``): nothing else is read, no DVC command runs.

Exit status: 0 when every image was identified, 1 when some could not be read (they
are reported and the others are still identified), 2 on a usage error (no such folder,
a folder without images, a missing, altered or incompatible bundle).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see stages/train.py)

SUFFIXES = (".jpg", ".jpeg", ".png")


BUNDLE = Path("models/springtail-model")  # the bundle stage's output, in a checkout


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and --pipeline: which model bundle to use (both commands)."""
    parser.add_argument("--model", type=Path, default=None,
                        help=f"the model bundle folder (default: <pipeline>/{BUNDLE})")
    parser.add_argument("--pipeline", type=Path, default=Path("."),
                        help="a trained checkout, whose bundle is used when --model is not given (default: here)")


def bundle_path(args: argparse.Namespace) -> Path:
    return args.model if args.model is not None else args.pipeline / BUNDLE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="springtail-identify", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of crop images (JPEG/PNG)")
    parser.add_argument("--out", type=Path, required=True, help="output CSV")
    add_model_arguments(parser)
    parser.add_argument("--unsure-below", type=float, default=0.6,
                        help="flag an image whose predicted class has a lower probability (default 0.6)")
    return parser.parse_args(argv)


def image_files(folder: Path) -> list[Path]:
    """The JPEG and PNG files directly in ``folder``, in name order.

    Raises:
        FileNotFoundError / ValueError: naming the folder when it is missing or has no image.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no JPEG or PNG image in this folder")
    return files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from springtail.common.io import write_csv
    from springtail.common.runtime import setup_torch
    from springtail.identify.table import identify_files
    from springtail.bundle.load import load_bundle

    try:
        files = image_files(args.images)
        setup_torch()
        pipeline = load_bundle(bundle_path(args)).pipeline
    except (FileNotFoundError, ValueError) as err:
        print(f"springtail-identify: {err}", file=sys.stderr)
        return 2
    table = identify_files(pipeline, files, args.unsure_below)
    write_csv(args.out, table)
    failed = table[table["error"] != ""]
    for row in failed.itertuples(index=False):
        print(f"springtail-identify: {row.error}", file=sys.stderr)
    print(f"springtail-identify: {len(table) - len(failed)} of {len(table)} images identified "
          f"({int(table['unsure'].sum())} unsure) -> {args.out}", file=sys.stderr)
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
