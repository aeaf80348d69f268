"""A corpus of bad, and odd but valid, raw inputs, built inside a test's tmp_path.

:func:`write_clean` writes a tiny raw layout that every stage accepts (four
training images with two boxes each, three test crops, sample_submission.csv);
each :class:`Case` damages a copy of it in one way and states what the stages
must do with it under ``data.on_error: fail`` and ``skip``:

- ``reason`` set: a bad record. ``fail`` stops the stage with an error whose
  message matches ``fail`` (the file, the line where there is one, and what
  was expected); ``skip`` leaves the record(s) out and counts them by reason
  in the stage's metrics; ``skip`` with a lower ``data.max_skipped`` still
  stops.
- ``reason`` None: valid input (CRLF, a byte-order mark, a grayscale or
  16-bit image...). Both policies accept it and skip nothing.

``stage`` says which stage judges the record: ``consensus`` reads the
annotation files only; ``crops`` decodes the images (a case there runs the
consensus stage first, which must accept it under both policies).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 192, 128  # displayed size of every training image
GREY, RED = (128, 128, 128), (220, 30, 30)
# Line 1: an off-centre box (a missed EXIF rotation would move it); line 2: a smaller one.
LINE_1 = "1_1_1_1 Pompey_1 2007 0.3 0.35 0.25 0.375"
LINE_2 = "2_2_2_2 Forêt de Haye 4/B 2012 0.75 0.7 0.15 0.25"
IMAGES = ("img0", "img1", "img2", "img3")
TEST_IDS = ("0", "1", "2")
VICTIM = "img0"  # the training image (and annotation file) a case damages
TEST_VICTIM = "1"  # the test crop a case damages


def box_pixels(line: str, width: int = WIDTH, height: int = HEIGHT) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a YOLO+ line's box in displayed pixels."""
    xc, yc, w, h = (float(v) for v in line.split()[-4:])
    return (round((xc - w / 2) * width), round((yc - h / 2) * height),
            round((xc + w / 2) * width), round((yc + h / 2) * height))


def picture() -> Image.Image:
    """The displayed training image: grey, a red rectangle in each box."""
    arr = np.full((HEIGHT, WIDTH, 3), GREY, dtype=np.uint8)
    for line in (LINE_1, LINE_2):
        x0, y0, x1, y1 = box_pixels(line)
        arr[y0:y1, x0:x1] = RED
    return Image.fromarray(arr)


def jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, subsampling=0, **kwargs)
    return buffer.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def write_clean(root: Path) -> Path:
    """The clean raw layout under ``root``; returns ``root``."""
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    image = jpeg_bytes(picture())
    for image_id in IMAGES:
        (root / "train" / f"{image_id}.jpg").write_bytes(image)
        (root / "train" / f"{image_id}.txt").write_text(f"{LINE_1}\n{LINE_2}\n", encoding="utf-8")
    crop = jpeg_bytes(picture().crop(box_pixels(LINE_1)))
    for idx in TEST_IDS:
        (root / "test" / f"{idx}.jpg").write_bytes(crop)
    pd.DataFrame({"idx": list(TEST_IDS), "gt": 0}).to_csv(root / "sample_submission.csv",
                                                          index=False)
    return root


def write_params(path: Path, on_error: str, max_skipped: int) -> Path:
    """The repository's params.yaml with this policy and small, single-process crops."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(on_error=on_error, max_skipped=max_skipped)
    params["crops"].update(crop_px=16, n_folds=2, background_per_image=0.5)
    params["runtime"]["workers"] = 1
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


# --- damage helpers: each takes the raw directory --------------------------------------


def _annotation(raw: Path) -> Path:
    return raw / "train" / f"{VICTIM}.txt"


def _line_2(line: str) -> Callable[[Path], None]:
    """Replace line 2 of the victim's annotation file."""
    def damage(raw: Path) -> None:
        _annotation(raw).write_text(f"{LINE_1}\n{line}\n", encoding="utf-8")
    return damage


def _annotation_bytes(data: bytes) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        _annotation(raw).write_bytes(data)
    return damage


def _remove(rel: str) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        (raw / rel).unlink()
    return damage


def _truncate(rel: str, keep: float = 0.6) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        data = (raw / rel).read_bytes()
        (raw / rel).write_bytes(data[: int(len(data) * keep)])
    return damage


def _image(rel: str, make: Callable[[], bytes]) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        (raw / rel).write_bytes(make())
    return damage


def exif_rotated() -> bytes:
    """The picture stored on its side with EXIF orientation 6 (rotate 90 degrees clockwise to
    display), as cameras write it."""
    stored = picture().transpose(Image.Transpose.ROTATE_90)  # 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(stored, exif=exif)


def sixteen_bit_png() -> bytes:
    """The picture as 16-bit grey (0..65535), a PNG."""
    grey = np.asarray(picture().convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(grey)
    assert image.mode == "I;16"
    return png_bytes(image)


VICTIM_JPG = f"train/{VICTIM}.jpg"
TEST_JPG = f"test/{TEST_VICTIM}.jpg"
LATIN1 = f"{LINE_1}\n2_2_2_2 Parcelles Lysimétriques Sept 2007/2008-3 0.75 0.7 0.15 0.25\n"


@dataclass(frozen=True)
class Case:
    """One damaged input and what each policy must do with it."""

    name: str
    stage: str  # "consensus" | "crops": the stage that judges it
    damage: Callable[[Path], None]
    reason: str | dict[str, int] | None  # what skip counts (one record, or counts by reason);
    # None = valid input, accepted by both policies
    fail: str = ""  # regex the ``fail`` error message must match
    note: str = ""  # the decision, for the behaviour table

    @property
    def skipped(self) -> dict[str, int]:
        """Records ``skip`` leaves out, by reason."""
        if self.reason is None:
            return {}
        return {self.reason: 1} if isinstance(self.reason, str) else dict(self.reason)

    def build(self, clean: Path, dest: Path) -> Path:
        """A copy of the clean layout ``clean`` at ``dest``, damaged; returns ``dest``."""
        shutil.copytree(clean, dest)
        self.damage(dest)
        return dest


V = rf"{VICTIM}\.txt"
L2 = rf"{V}, line 2: "
CASES: tuple[Case, ...] = (
    # --- annotation files (consensus) ---
    Case("zero_byte_annotation", "consensus", _annotation_bytes(b""), "empty_file",
         rf"{V}: annotation file holds no box"),
    Case("blank_annotation", "consensus", _annotation_bytes(b"\n  \r\n\t\n"), "empty_file",
         rf"{V}: annotation file holds no box"),
    Case("image_without_annotation", "consensus", _remove(f"train/{VICTIM}.txt"),
         "missing_annotation", rf"{VICTIM}\.jpg: image has no annotation file {V}"),
    Case("too_few_fields", "consensus", _line_2("2_2_2_2 P 0.75 0.7 0.15"), "too_few_fields",
         rf"{L2}expected .* \(at least 6 fields\), got 5"),
    Case("votes_only", "consensus", _line_2("2_2_2_2"), "too_few_fields", rf"{L2}expected"),
    Case("project_of_six_tokens", "consensus", _line_2("2_2_2_2 a b c d e f 0.75 0.7 0.15 0.25"),
         "too_many_fields", rf"{L2}too many fields: .* of 6 tokens",
         note="a project has 1 to 5 tokens (the reference format)"),
    Case("fifth_box_number", "consensus", _line_2("2_2_2_2 P 0.75 0.7 0.15 0.25 0.9"),
         "too_many_fields", rf"{L2}too many fields: .*ending in a fraction",
         note="a project token like 0.9 is taken for an extra box column"),
    Case("trailing_word", "consensus", _line_2("2_2_2_2 P 0.75 0.7 0.15 0.25 extra"),
         "bad_number", rf"{L2}h must be a number in \[0, 1\], got 'extra'"),
    Case("non_numeric_coordinate", "consensus", _line_2("2_2_2_2 P 0.75 abc 0.15 0.25"),
         "bad_number", rf"{L2}yc must be a number in \[0, 1\], got 'abc'"),
    Case("decimal_comma", "consensus", _line_2("2_2_2_2 P 0,75 0,7 0,15 0,25"), "bad_number",
         rf"{L2}xc must be a number"),
    Case("nan_coordinate", "consensus", _line_2("2_2_2_2 P nan 0.7 0.15 0.25"), "bad_number",
         rf"{L2}xc must be a number in \[0, 1\], got 'nan'"),
    Case("coordinate_above_one", "consensus", _line_2("2_2_2_2 P 1.5 0.7 0.15 0.25"),
         "out_of_range", rf"{L2}xc must be a number in \[0, 1\], got '1.5'"),
    Case("negative_coordinate", "consensus", _line_2("2_2_2_2 P 0.75 -0.1 0.15 0.25"),
         "out_of_range", rf"{L2}yc must be a number in \[0, 1\], got '-0.1'"),
    Case("zero_width_box", "consensus", _line_2("2_2_2_2 P 0.75 0.7 0 0.25"), "empty_box",
         rf"{L2}box width and height must be > 0"),
    Case("three_votes", "consensus", _line_2("2_2_2 P 0.75 0.7 0.15 0.25"), "bad_votes",
         rf"{L2}expected 4 integer votes joined by '_'"),
    Case("non_integer_vote", "consensus", _line_2("2_2.0_2_2 P 0.75 0.7 0.15 0.25"), "bad_votes",
         rf"{L2}expected 4 integer votes"),
    Case("non_ascii_digit_vote", "consensus", _line_2("2_2_2_\u00b2 P 0.75 0.7 0.15 0.25"),
         "bad_votes", rf"{L2}expected 4 integer votes"),
    Case("unknown_class_vote", "consensus", _line_2("2_2_2_9 P 0.75 0.7 0.15 0.25"),
         "unknown_class", rf"{L2}vote 9 in '2_2_2_9' is not a class id 0..8"),
    Case("latin1_project", "consensus", _annotation_bytes(LATIN1.encode("latin-1")), "encoding",
         rf"{L2}not valid UTF-8: byte\(s\) b'\\xe9' at column 24",
         note="no guessing of legacy encodings; under skip only that line is lost"),
    Case("duplicated_line", "consensus", _line_2(LINE_1.replace("Pompey_1", "Other")),
         "duplicate_box", rf"{L2}repeats line 1 \(same votes and box\)",
         note="same votes and box; under skip the first line is kept"),
    Case("three_bad_lines", "consensus",
         _annotation_bytes(b"1_1_1 P 0.1 0.1 0.1 0.1\n1_1_1_1 P 2 0.1 0.1 0.1\n"
                           b"1_1_1_1 P 0.1 0.1 0 0.1\n"),
         {"bad_votes": 1, "out_of_range": 1, "empty_box": 1},
         rf"{V}, line 1: expected 4 integer votes",
         note="each bad line is one record"),
    Case("crlf_line_ends", "consensus", _annotation_bytes(f"{LINE_1}\r\n{LINE_2}\r\n".encode()),
         None),
    Case("lone_cr_line_ends", "consensus", _annotation_bytes(f"{LINE_1}\r{LINE_2}\r".encode()),
         None),
    Case("utf8_bom", "consensus",
         _annotation_bytes(b"\xef\xbb\xbf" + f"{LINE_1}\n{LINE_2}\n".encode()), None),
    Case("tabs_and_blank_lines", "consensus",
         _annotation_bytes(f"{LINE_1.replace(' ', chr(9))}\t\n {LINE_2}  \n\n \n".encode()), None),
    Case("same_box_other_votes", "consensus", _line_2(LINE_1.replace("1_1_1_1", "1_1_1_3")),
         None, note="two annotations of one box: both kept"),
    # --- training images (crops) ---
    Case("annotation_without_image", "crops", _remove(VICTIM_JPG), "missing_image",
         rf"{VICTIM}\.jpg: image file is missing",
         note="consensus counts it (files.annotations_without_image); crops judges it"),
    Case("truncated_jpeg", "crops", _truncate(VICTIM_JPG), "truncated_image",
         rf"{VICTIM}\.jpg: cannot decode image: image file is truncated"),
    Case("zero_byte_image", "crops", _image(VICTIM_JPG, bytes), "unreadable_image",
         rf"{VICTIM}\.jpg: not a readable image: .*\(expected a complete JPEG or PNG file\)"),
    Case("text_named_jpg", "crops", _image(VICTIM_JPG, lambda: b"not an image\n"),
         "unreadable_image", rf"{VICTIM}\.jpg: not a readable image"),
    Case("grayscale_jpeg", "crops", _image(VICTIM_JPG, lambda: jpeg_bytes(picture().convert("L"))),
         None),
    Case("cmyk_jpeg", "crops", _image(VICTIM_JPG, lambda: jpeg_bytes(picture().convert("CMYK"))),
         None),
    Case("png_named_jpg", "crops", _image(VICTIM_JPG, lambda: png_bytes(picture())), None),
    Case("rgba_png_named_jpg", "crops",
         _image(VICTIM_JPG, lambda: png_bytes(picture().convert("RGBA"))), None),
    Case("sixteen_bit_png_named_jpg", "crops", _image(VICTIM_JPG, sixteen_bit_png), None),
    Case("exif_orientation", "crops", _image(VICTIM_JPG, exif_rotated), None,
         note="rotated as displayed; boxes are in displayed coordinates"),
    # --- test crops (crops) ---
    Case("unreadable_test_crop", "crops", _image(TEST_JPG, lambda: b"\xff\xd8garbage"),
         "test_unreadable_image", rf"test/{TEST_VICTIM}\.jpg: not a readable image",
         note="under skip its idx is missing from the index; the submission stage then stops"),
    Case("truncated_test_crop", "crops", _truncate(TEST_JPG, 0.5), "test_truncated_image",
         rf"test/{TEST_VICTIM}\.jpg: (cannot decode|not a readable) image: .*[Tt]runcated"),
    Case("zero_byte_test_crop", "crops", _image(TEST_JPG, bytes), "test_unreadable_image",
         rf"test/{TEST_VICTIM}\.jpg: not a readable image"),
)
