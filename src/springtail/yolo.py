"""The strict YOLO+ annotation parser.

One line per box::

    <v1>_<v2>_<v3>_<v4> <project: one or more tokens> <xc> <yc> <w> <h>

The first token holds the four experts' class votes, the last four tokens the
normalised YOLO box, and everything between is the free-text project name
(it may hold spaces, underscores, slashes and non-ASCII letters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from springtail.classes import N_CLASSES, N_EXPERTS


class AnnotationError(ValueError):
    """A malformed annotation: the message names the file, the line and what was expected."""

    def __init__(self, path: str | Path, line_no: int, message: str, reason: str = "malformed"):
        self.path = str(path)
        self.line_no = line_no
        self.reason = reason  # short machine-readable kind, counted in metrics
        where = f"{path}, line {line_no}" if line_no else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Box:
    """One annotated box: the four votes, the project and the normalised YOLO box."""

    votes: tuple[int, int, int, int]
    project: str
    xc: float
    yc: float
    w: float
    h: float
    line_no: int = 0

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in integer pixels, clipped to the image."""
        x0 = max(0, int(round((self.xc - self.w / 2) * width)))
        y0 = max(0, int(round((self.yc - self.h / 2) * height)))
        x1 = min(width, int(round((self.xc + self.w / 2) * width)))
        y1 = min(height, int(round((self.yc + self.h / 2) * height)))
        return x0, y0, x1, y1


def _parse_votes(token: str, path: str | Path, line_no: int) -> tuple[int, int, int, int]:
    parts = token.split("_")
    if len(parts) != N_EXPERTS or not all(p.isdigit() for p in parts):
        raise AnnotationError(
            path, line_no,
            f"expected {N_EXPERTS} integer votes joined by '_' as the first token "
            f"(for example 1_1_1_3), got {token!r}", "bad_votes",
        )
    votes = tuple(int(p) for p in parts)
    bad = [v for v in votes if not 0 <= v < N_CLASSES]
    if bad:
        raise AnnotationError(
            path, line_no, f"vote {bad[0]} in {token!r} is not a class id 0..{N_CLASSES - 1}",
            "unknown_class",
        )
    return votes  # type: ignore[return-value]


def _parse_box(tokens: list[str], path: str | Path, line_no: int) -> tuple[float, ...]:
    values = []
    for name, token in zip(("xc", "yc", "w", "h"), tokens):
        try:
            value = float(token)
        except ValueError:
            raise AnnotationError(
                path, line_no, f"{name} must be a number in [0, 1], got {token!r}", "bad_number"
            ) from None
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise AnnotationError(
                path, line_no, f"{name} must be a number in [0, 1], got {token!r}", "out_of_range"
            )
        values.append(value)
    if values[2] <= 0.0 or values[3] <= 0.0:
        raise AnnotationError(
            path, line_no, f"box width and height must be > 0, got w={tokens[2]} h={tokens[3]}",
            "empty_box",
        )
    return tuple(values)


def parse_line(line: str, path: str | Path = "<string>", line_no: int = 1) -> Box:
    """Parse one YOLO+ line into a :class:`Box`; raise :class:`AnnotationError` if malformed."""
    tokens = line.split()
    if len(tokens) < 6:
        raise AnnotationError(
            path, line_no,
            f"expected '<v1>_<v2>_<v3>_<v4> <project> <xc> <yc> <w> <h>' (at least 6 fields), "
            f"got {len(tokens)} field(s): {line.strip()!r}", "too_few_fields",
        )
    votes = _parse_votes(tokens[0], path, line_no)
    xc, yc, w, h = _parse_box(tokens[-4:], path, line_no)
    project = " ".join(tokens[1:-4])
    return Box(votes, project, xc, yc, w, h, line_no)


def decode_text(data: bytes, path: str | Path) -> str:
    """Decode an annotation file: UTF-8 (a BOM is dropped), else a clear error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = data[: err.start].count(b"\n") + 1
        raise AnnotationError(
            path, line_no, f"not valid UTF-8 at byte {err.start} (expected UTF-8 text)", "encoding"
        ) from None


def parse_text(text: str, path: str | Path = "<string>") -> list[Box]:
    """Parse a whole YOLO+ file's text; blank lines are ignored, CRLF is accepted."""
    return [
        parse_line(line, path, line_no)
        for line_no, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def read_annotations(path: str | Path) -> list[Box]:
    """Read and parse one YOLO+ ``.txt`` file.

    Raises:
        AnnotationError: on undecodable text, a malformed line or an empty file.
    """
    path = Path(path)
    boxes = parse_text(decode_text(path.read_bytes(), path), path)
    if not boxes:
        raise AnnotationError(path, 0, "annotation file holds no box (expected at least one line)",
                              "empty_file")
    return boxes


def format_line(box: Box) -> str:
    """The YOLO+ line for ``box`` (inverse of :func:`parse_line`)."""
    votes = "_".join(str(v) for v in box.votes)
    return f"{votes} {box.project} {box.xc!r} {box.yc!r} {box.w!r} {box.h!r}"
