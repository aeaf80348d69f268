"""Read every ``train/*.txt`` of a raw directory into one table of boxes.

The consensus stage needs the votes and boxes only, so the images themselves
are never opened here: an annotation without its image is counted (the crops
stage is where a missing image matters), while an image without annotation is
a bad record under ``data.on_error``: every real training image has boxes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from springtail.classes import N_EXPERTS
from springtail.policy import SkipLog
from springtail.yolo import AnnotationError, Box, decode_text, parse_line, read_annotations

VOTE_COLUMNS = tuple(f"v{j + 1}" for j in range(N_EXPERTS))
BOX_COLUMNS = ("image_id", "line", "xc", "yc", "w", "h", *VOTE_COLUMNS, "project")
IMAGE_SUFFIX = ".jpg"


def _read_lenient(path: Path, text: str, log: SkipLog) -> list[Box]:
    """Parse ``text`` line by line, handing each bad line to ``log``."""
    boxes = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            boxes.append(parse_line(line, path, line_no))
        except AnnotationError as err:
            log.handle(err)
    return boxes


def read_boxes(path: Path, log: SkipLog) -> list[Box]:
    """Boxes of one file: strict parse, or line by line under ``on_error=skip``.

    An undecodable or empty file is one bad record; otherwise each bad line is.
    """
    try:
        return read_annotations(path)
    except AnnotationError as err:
        if log.policy.on_error == "fail" or err.reason in ("encoding", "empty_file"):
            log.handle(err)
            return []
    return _read_lenient(path, decode_text(path.read_bytes(), path), log)


def boxes_table(image_id: str, boxes: list[Box]) -> list[dict]:
    """Rows of the box table for one image (votes spread over v1..v4)."""
    return [
        {"image_id": image_id, "line": b.line_no, "xc": b.xc, "yc": b.yc, "w": b.w, "h": b.h,
         **dict(zip(VOTE_COLUMNS, b.votes)), "project": b.project}
        for b in boxes
    ]


def read_train_annotations(raw_dir: str | Path, log: SkipLog) -> tuple[pd.DataFrame, dict]:
    """Read ``<raw_dir>/train/*.txt`` under the error policy held by ``log``.

    Returns:
        boxes: one row per box (columns ``BOX_COLUMNS``), sorted by image_id, line.
        files: counts of annotation files, images, and the unpaired ones.

    Raises:
        FileNotFoundError: when ``train/`` is missing.
        AnnotationError / DataError: a bad record under ``on_error=fail``.
        TooManySkipped: more bad records than ``data.max_skipped``.
        ValueError: when no box at all could be read.
    """
    train = Path(raw_dir) / "train"
    if not train.is_dir():
        raise FileNotFoundError(f"{train}: missing train/ directory (expected <id>.txt files)")
    texts = {p.stem: p for p in sorted(train.glob("*.txt"))}
    images = {p.stem for p in train.glob(f"*{IMAGE_SUFFIX}")}
    for image_id in sorted(images - set(texts)):
        log.handle(AnnotationError(train / f"{image_id}{IMAGE_SUFFIX}", 0,
                                   f"image has no annotation file {image_id}.txt",
                                   "missing_annotation"))
    rows: list[dict] = []
    for image_id, path in texts.items():
        rows.extend(boxes_table(image_id, read_boxes(path, log)))
    if not rows:
        raise ValueError(f"{train}: no annotated box could be read")
    boxes = pd.DataFrame(rows, columns=list(BOX_COLUMNS))
    boxes = boxes.sort_values(["image_id", "line"], kind="stable").reset_index(drop=True)
    files = {
        "annotation_files": len(texts),
        "images": len(images),
        "annotations_without_image": len(set(texts) - images),
        "images_without_annotation": len(images - set(texts)),
    }
    return boxes, files
