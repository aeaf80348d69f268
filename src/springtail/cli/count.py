"""springtail-count: whole microscope photos in; springtails found, named and counted.

    springtail-count --photos this_week/ --out counts/ [--model DIR] [--check-below 0.5]

For every photo (JPEG or PNG) in the folder: candidate boxes (dark objects on the
bright field), each named by the trained ensemble, background (FOND) rejected. Writes
<out>/boxes.csv (photo, box in pixels, species, probability, p_<class> for every class),
<out>/counts.csv (one row per photo, one column per species, and the total),
<out>/totals.csv (the folder as one sample: each species' estimated total, corrected for
the detector's misses and false boxes and for the classifier's confusion, with a 90 %
interval, the plain count ``cc`` and the boxes to check by hand) and
<out>/annotated/<photo>.jpg (the photo with its boxes). The model is a bundle folder (as
for springtail-identify): nothing else is read, no DVC command runs. A file that cannot be
read is named on screen and in counts.csv's ``error`` column; the other photos are counted
and totalled all the same (exit status 1; 0 when all were read).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see stages/train.py)

from springtail.cli.identify import add_model_arguments, bundle_path  # noqa: E402  (argparse only: no torch)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="springtail-count", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder of whole photos (JPEG/PNG)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--check-below", type=float, default=0.5,
                        help="a box whose species probability is lower is one to check by hand (default 0.5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from springtail.common.runtime import setup_torch
    from springtail.cli.folder import count_folder
    from springtail.cli.identify import image_files

    try:
        files = image_files(args.photos)
        setup_torch()
        done = count_folder(files, bundle_path(args), args.out, args.check_below)
    except (FileNotFoundError, ValueError) as err:
        print(f"springtail-count: {err}", file=sys.stderr)
        return 2
    for error in done.errors:
        print(f"springtail-count: {error}", file=sys.stderr)
    print(f"springtail-count: {len(files) - len(done.errors)} of {len(files)} photos, "
          f"{done.springtails} springtails -> {args.out}", file=sys.stderr)
    found = done.totals[done.totals["cc"] + done.totals["high"] > 0]
    print("springtail-count: estimated totals [90 % interval]: " + (", ".join(
        f"{r.species} {r.estimate:.1f} [{r.low}, {r.high}]" for r in found.itertuples()) or "none"), file=sys.stderr)
    return 1 if done.errors else 0


if __name__ == "__main__":
    sys.exit(main())
