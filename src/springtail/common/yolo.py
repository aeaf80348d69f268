"""The strict YOLO+ annotation parser.

One line per box::

    <v1>_<v2>_<v3>_<v4> <project: one or more tokens> <xc> <yc> <w> <h>

The first token holds the four experts' class votes, the last four tokens the
normalised YOLO box, and everything between is the free-text project name
(it may hold spaces, underscores, slashes and non-ASCII letters).

What the parser accepts, and why:

- Text is UTF-8; a byte-order mark is dropped; CRLF, LF and lone CR all end a
  line (line numbers in errors are the ones an editor shows). Anything else,
  e.g. a project name saved as Latin-1, is an ``encoding`` error naming the
  line: guessing a legacy encoding would silently garble names.
- Fields are separated by ASCII blanks only (space, tab, vertical tab, form
  feed), so a project name keeps any other character (a no-break space, an
  accented letter) as it is.
- Votes are exactly four ASCII integers 0..8 joined by ``_``.
- Box values are plain ASCII decimal numbers in [0, 1], width and height > 0
  (``nan``, ``inf``, ``1_0`` and non-ASCII digits are refused).
- The project has 1 to ``MAX_PROJECT_TOKENS`` tokens (the real files have 1
  to 5). "Too many fields" is therefore a line whose project would be longer,
  or one with five trailing fractions (``... 0.5 0.5 0.2 0.2 0.9``): the last
  project token would be a fraction such as ``0.5``, which is far more likely
  an extra box column (a score, a class) than part of a campaign name. An
  integer token (``2007``, ``1``) is an ordinary project token.
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass
from pathlib import Path

from springtail.common.classes import N_CLASSES, N_EXPERTS

MAX_PROJECT_TOKENS = 5  # the real files' project names have 1 to 5 tokens
_FIELD_SEP = re.compile(r"[ \t\v\f]+")  # ASCII blanks only: other characters stay in the project
_BLANK = " \t\v\f"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_VOTE = re.compile(r"[0-9]{1,9}")  # bounded: int() of thousands of digits raises ValueError


class AnnotationError(ValueError):
    """A malformed annotation: the message names the file, the line and what was expected."""

    def __init__(self, path: str | Path, line_no: int, message: str, reason: str = "malformed"):
        self.path = str(path)
        self.line_no = line_no
        self.reason = reason  # short machine-readable kind, counted in metrics
        self.detail = message  # the message without the file and line
        where = f"{path}, line {line_no}" if line_no else str(path)
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # survive pickling between worker processes
        return (type(self), (self.path, self.line_no, self.detail, self.reason))


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
    if len(parts) != N_EXPERTS or not all(_VOTE.fullmatch(p) for p in parts):
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
        if not _NUMBER.fullmatch(token):
            raise AnnotationError(
                path, line_no, f"{name} must be a number in [0, 1], got {token!r}", "bad_number"
            )
        value = float(token)
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


def _is_fraction(token: str) -> bool:
    """A number in [0, 1] written with a decimal point or an exponent: ``0.5``, ``1e-3``."""
    return (bool(_NUMBER.fullmatch(token)) and any(c in token for c in ".eE")
            and 0.0 <= float(token) <= 1.0)


def _check_project(tokens: list[str], path: str | Path, line_no: int) -> None:
    """Refuse a project that is too long or ends with a fraction (an extra box column)."""
    if len(tokens) > MAX_PROJECT_TOKENS or _is_fraction(tokens[-1]):
        raise AnnotationError(
            path, line_no,
            f"too many fields: expected votes, a project of 1 to {MAX_PROJECT_TOKENS} tokens and "
            f"exactly 4 box numbers, got a project {' '.join(tokens)!r} "
            + ("ending in a fraction (a fifth box number?)" if len(tokens) <= MAX_PROJECT_TOKENS
               else f"of {len(tokens)} tokens"),
            "too_many_fields",
        )


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` split at CRLF, LF or CR only (``str.splitlines`` also splits at
    form feeds, U+2028 and others, which would shift line numbers)."""
    return _LINE_BREAK.split(text)


def is_blank(line: str) -> bool:
    return not line.strip(_BLANK)


def parse_line(line: str, path: str | Path = "<string>", line_no: int = 1) -> Box:
    """Parse one YOLO+ line into a :class:`Box`; raise :class:`AnnotationError` if malformed."""
    tokens = _FIELD_SEP.split(line.strip(_BLANK + "\r\n"))
    if len(tokens) < 6:
        raise AnnotationError(
            path, line_no,
            f"expected '<v1>_<v2>_<v3>_<v4> <project> <xc> <yc> <w> <h>' (at least 6 fields), "
            f"got {len(tokens) if tokens != [''] else 0} field(s): {line.strip()!r}",
            "too_few_fields",
        )
    votes = _parse_votes(tokens[0], path, line_no)
    xc, yc, w, h = _parse_box(tokens[-4:], path, line_no)
    _check_project(tokens[1:-4], path, line_no)
    project = " ".join(tokens[1:-4])
    return Box(votes, project, xc, yc, w, h, line_no)


BOM = codecs.BOM_UTF8


def decode_text(data: bytes, path: str | Path) -> str:
    """Decode an annotation file: UTF-8 (a BOM is dropped), else a clear error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + (len(BOM) if data.startswith(BOM) else 0)  # utf-8-sig counts after its BOM
        before = split_lines(data[:start].decode("utf-8-sig"))
        bad = data[start: start + err.end - err.start]
        raise AnnotationError(
            path, len(before),
            f"not valid UTF-8: byte(s) {bad!r} at column {len(before[-1]) + 1} (expected UTF-8 "
            f"text; re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`)", "encoding",
        ) from None


def parse_text(text: str, path: str | Path = "<string>") -> list[Box]:
    """Parse a whole YOLO+ file's text; blank lines are ignored, CRLF and CR are accepted."""
    return [
        parse_line(line, path, line_no)
        for line_no, line in enumerate(split_lines(text), start=1)
        if not is_blank(line)
    ]


def read_bytes(path: Path) -> bytes:
    """The file's bytes; an unreadable file (permissions, a directory) is an AnnotationError."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise AnnotationError(path, 0, f"cannot read the annotation file ({err.strerror})",
                              "unreadable_file") from None


def read_annotations(path: str | Path) -> list[Box]:
    """Read and parse one YOLO+ ``.txt`` file.

    Raises:
        AnnotationError: on undecodable text, a malformed line or an empty file.
    """
    path = Path(path)
    boxes = parse_text(decode_text(read_bytes(path), path), path)
    if not boxes:
        raise AnnotationError(path, 0, "annotation file holds no box (expected at least one line)",
                              "empty_file")
    return boxes


def format_line(box: Box) -> str:
    """The YOLO+ line for ``box`` (inverse of :func:`parse_line`)."""
    votes = "_".join(str(v) for v in box.votes)
    return f"{votes} {box.project} {box.xc!r} {box.yc!r} {box.w!r} {box.h!r}"
