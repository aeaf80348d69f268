"""A folder of photos through the detector: boxes, counts and annotated pictures on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import ImageDraw

from springtail.bundle.load import load_bundle
from springtail.common.decode import load_rgb
from springtail.common.io import atomic_path, write_csv
from springtail.common.policy import DataError
from springtail.common.runtime import cpu_count
from springtail.detect.photos import PROB_CODES, counts_table, detect_photos
from springtail.detect.totals import CHECK_BELOW, sample_totals

PREVIEW = 4  # annotated pictures are written at 1/4 of the photo's size


@dataclass
class Counted:
    springtails: int
    errors: list[str]  # one message per photo that could not be read (it names the file)
    totals: pd.DataFrame  # species, estimate, low, high, cc, boxes_to_check


def annotate(path: Path, boxes: pd.DataFrame, out: Path) -> None:
    """The photo at 1/``PREVIEW`` size with each accepted box and its species drawn, as JPEG."""
    image, scale, _ = load_rgb(path, PREVIEW)
    draw = ImageDraw.Draw(image)
    for box in boxes.itertuples(index=False):
        corners = [v / scale for v in (box.x0, box.y0, box.x1, box.y1)]
        draw.rectangle(corners, outline=(220, 30, 30), width=3)
        draw.text((corners[0] + 4, corners[1] + 4), f"{box.predicted} {box.probability:.2f}", fill=(220, 30, 30))
    with atomic_path(out) as tmp:
        image.save(tmp, "JPEG", quality=85)


def count_folder(files: list[Path], bundle: Path, out: Path, check_below: float = CHECK_BELOW) -> Counted:
    """Detect, name and count the springtails of every photo in ``files`` with the model
    bundle at ``bundle``; write boxes.csv, counts.csv, totals.csv and annotated/ in ``out``."""
    model = load_bundle(bundle)
    calibration = model.calibration()
    scorer = model.scorer()
    found, errors, names = [], {}, []
    for path, result in detect_photos(files, model.pipeline, scorer, cpu_count()):
        try:
            if isinstance(result, DataError):
                raise result
            boxes, _ = result
            accepted = boxes[boxes["accepted"]].drop(columns=["accepted", "score"])
            annotate(path, accepted, out / "annotated" / f"{path.name}.jpg")  # a.jpg and a.png apart
        except DataError as err:
            errors[path.name] = str(err)
            continue
        found.append(accepted)
        names.append(path.name)
    boxes = pd.concat(found, ignore_index=True) if found else pd.DataFrame(
        columns=["photo", "x0", "y0", "x1", "y1", "predicted", "probability", *PROB_CODES])
    counts = counts_table(boxes.assign(accepted=True), names)
    counts = counts.astype({c: "Int64" for c in counts.columns if c != "photo"})  # blank for failed photos
    counts["error"] = ""
    failed = pd.DataFrame({"photo": list(errors), "error": list(errors.values())})
    counts = pd.concat([counts, failed], ignore_index=True) if len(failed) else counts
    totals = sample_totals(boxes, calibration, check_below)
    write_csv(out / "boxes.csv", boxes)
    write_csv(out / "counts.csv", counts)
    write_csv(out / "totals.csv", totals)
    return Counted(int(len(boxes)), list(errors.values()), totals)
