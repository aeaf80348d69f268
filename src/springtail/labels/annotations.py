"""Read every ``train/*.txt`` of a raw directory into one table of boxes.

The consensus stage needs the votes and boxes only, so the images themselves
are never opened here: an annotation without its image is counted (the crops
stage is where a missing image matters), while an image without annotation is
a bad record under ``data.on_error``: every real training image has boxes.

Under ``on_error=skip`` a record is one line: a bad line (including one that
is not valid UTF-8) is dropped and the file's other lines are kept. An empty
or unreadable file is one record. A line that repeats an earlier line of the
same file (same votes and same box; the project is not compared) is a bad
record too (``duplicate_box``): a copy-pasted line would count one specimen
twice. Under ``skip`` the first line is kept. The same box with other votes
is not a duplicate: both lines are kept, as two annotations.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from springtail.common.classes import N_EXPERTS
from springtail.common.policy import SkipLog
from springtail.common.yolo import (
    AnnotationError,
    Box,
    decode_text,
    is_blank,
    parse_line,
    read_annotations,
    read_bytes,
    split_lines,
)

VOTE_COLUMNS = tuple(f"v{j + 1}" for j in range(N_EXPERTS))
BOX_COLUMNS = ("image_id", "line", "xc", "yc", "w", "h", *VOTE_COLUMNS, "project")
IMAGE_SUFFIX = ".jpg"


def decoded_lines(path: Path, data: bytes, log: SkipLog) -> list[tuple[int, str]]:
    """(line number, text) of each non-blank line; a line that is not UTF-8 goes to ``log``."""
    lines = []
    for line_no, raw in enumerate(split_lines(data.decode("latin-1")), start=1):
        encoded = raw.encode("latin-1")  # the line's original bytes (latin-1 maps bytes 1:1)
        if line_no == 1:
            encoded = encoded.removeprefix(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
        try:
            text = encoded.decode("utf-8")
        except UnicodeDecodeError:
            try:
                decode_text(encoded, path)
            except AnnotationError as err:  # the strict decoder's message, this line's number
                log.handle(AnnotationError(path, line_no, err.detail, err.reason))
            continue
        if not is_blank(text):
            lines.append((line_no, text))
    return lines


def _read_lenient(path: Path, log: SkipLog) -> list[Box]:
    """Parse a file line by line, handing each bad line to ``log``."""
    boxes = []
    lines = decoded_lines(path, read_bytes(path), log)
    for line_no, line in lines:
        try:
            boxes.append(parse_line(line, path, line_no))
        except AnnotationError as err:
            log.handle(err)
    return boxes


def drop_duplicates(path: Path, boxes: list[Box], log: SkipLog) -> list[Box]:
    """Keep the first of lines with the same votes and box; every repeat goes to ``log``."""
    first: dict[tuple, int] = {}
    kept = []
    for box in boxes:
        key = (box.votes, box.xc, box.yc, box.w, box.h)
        if key in first:
            log.handle(AnnotationError(
                path, box.line_no,
                f"repeats line {first[key]} (same votes and box); expected one line per "
                f"specimen", "duplicate_box"))
            continue
        first[key] = box.line_no
        kept.append(box)
    return kept


def read_boxes(path: Path, log: SkipLog) -> list[Box]:
    """Boxes of one file: strict parse under ``on_error=fail``, line by line under ``skip``.

    An empty or unreadable file is one bad record; otherwise each bad line is.
    """
    try:
        boxes = read_annotations(path)
    except AnnotationError as err:
        if log.policy.on_error == "fail" or err.reason in ("empty_file", "unreadable_file"):
            log.handle(err)
            return []
        boxes = _read_lenient(path, log)
    return drop_duplicates(path, boxes, log)


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
