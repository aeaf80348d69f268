"""The strict YOLO+ parser: real annotation files, malformed input, encodings, round trips."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from springtail.common.yolo import AnnotationError, Box, format_line, parse_line, read_annotations

from conftest import REFERENCE

VALID = "1_1_3_1 Bioindicateur 2 2009/2010 0.5 0.25 0.125 0.75"
NON_ASCII_PROJECT = "Parcelles Lysimétriques Sept 2007/2008-3"
# An independent reading of a line: four one-digit votes, the project, four numbers.
LINE = re.compile(r"(\d)_(\d)_(\d)_(\d) (.+) (\S+) (\S+) (\S+) (\S+)")


@pytest.fixture(scope="module")
def yolo_files() -> list[Path]:
    files = sorted((REFERENCE / "yolo_plus").glob("*.txt"))
    assert len(files) == 38, f"expected the 38 real YOLO+ files in {REFERENCE / 'yolo_plus'}"
    return files


def simple_read(path: Path) -> list[tuple]:
    """(line_no, votes, project, xc, yc, w, h) for every line, read with a regex."""
    rows = []
    for line_no, line in enumerate(path.read_bytes().decode("utf-8").split("\n"), start=1):
        if line:
            m = LINE.fullmatch(line)
            assert m, f"{path.name}:{line_no} is not a plain YOLO+ line"
            votes = tuple(int(g) for g in m.groups()[:4])
            rows.append((line_no, votes, m.group(5), *(float(g) for g in m.groups()[5:])))
    return rows


# --- the real files -----------------------------------------------------------------------

def test_reads_every_reference_file_exactly(yolo_files):
    assert len(yolo_files) == 38
    n_boxes = 0
    for path in yolo_files:
        got = [(b.line_no, b.votes, b.project, b.xc, b.yc, b.w, b.h) for b in read_annotations(path)]
        assert got == simple_read(path), path.name
        n_boxes += len(got)
    assert n_boxes == 47


def test_reference_projects_and_votes_survive(yolo_files):
    boxes = [b for path in yolo_files for b in read_annotations(path)]
    projects = {b.project for b in boxes}
    assert {NON_ASCII_PROJECT, "TIDM_URBA/DIJON2021_2/3", "Pompey_1 2007", "NARBONS",
            "Bioindicateur 2 2009/2010", "PEY Benjamin 10_2007"} <= projects
    assert any(len(set(b.votes)) > 1 for b in boxes), "disagreeing votes are kept as written"


def test_reference_lines_round_trip_byte_for_byte(yolo_files):
    for path in yolo_files:
        lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line]
        assert [format_line(parse_line(line)) for line in lines] == lines


# --- malformed input -------------------------------------------------------------------------

@pytest.mark.parametrize("line, reason", [
    ("1_1_1_1 Pompey_1 2007 0.5 0.5 0.1", "out_of_range"),   # a field missing: 2007 is read as xc
    ("1_1_1_1 0.5 0.5 0.1 0.1", "too_few_fields"),            # no project
    ("1_1_1_1", "too_few_fields"),
    ("1_1_1 NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),
    ("1-1-1-1 NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),
    ("a_1_1_1 NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),
    ("1_1__1 NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),
    ("1_1_-1_1 NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),
    ("9_1_1_1 NARBONS 0.5 0.5 0.1 0.1", "unknown_class"),
    ("1_1_1_12 NARBONS 0.5 0.5 0.1 0.1", "unknown_class"),
    ("1_1_1_1 NARBONS x 0.5 0.1 0.1", "bad_number"),
    ("1_1_1_1 NARBONS 0.5 0.5 0,1 0.1", "bad_number"),
    ("1_1_1_1 NARBONS 1.5 0.5 0.1 0.1", "out_of_range"),
    ("1_1_1_1 NARBONS 0.5 -0.1 0.1 0.1", "out_of_range"),
    ("1_1_1_1 NARBONS nan 0.5 0.1 0.1", "bad_number"),
    ("1_1_1_1 NARBONS 0.5 0.5 inf 0.1", "bad_number"),
    ("1_1_1_1 NARBONS 0.5 0.5 1_0 0.1", "bad_number"),        # float() would read 10
    ("1_1_1_1 NARBONS 0.5 0.5 ٠.٥ 0.1", "bad_number"),        # non-ASCII digits
    ("²_1_1_1 NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),         # isdigit() but not int()-able
    ("١_١_١_١ NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),         # Arabic-Indic digits
    ("1_1_1_" + "1" * 5000 + " NARBONS 0.5 0.5 0.1 0.1", "bad_votes"),
    ("1_1_1_1 a b c d e f 0.5 0.5 0.1 0.1", "too_many_fields"),  # projects have 1 to 5 tokens
    ("1_1_1_1 NARBONS 0.5 0.5 0.5 0.1 0.1", "too_many_fields"),  # a fifth box number
    ("1_1_1_1 NARBONS 0.5 0.5 0 0.1", "empty_box"),
    ("1_1_1_1 NARBONS 0.5 0.5 0.1 0.0", "empty_box"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "0.10.20.3.txt"
    path.write_text(f"{VALID}\n{VALID}\n{line}\n{VALID}\n", encoding="utf-8")
    with pytest.raises(AnnotationError) as err:
        read_annotations(path)
    assert err.value.reason == reason
    assert err.value.line_no == 3 and err.value.path == str(path)
    assert str(path) in str(err.value) and "line 3" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n", b"\xef\xbb\xbf"])
def test_empty_file_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=re.escape(str(path))) as err:
        read_annotations(path)
    assert err.value.reason == "empty_file"


def test_bad_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    latin1 = "2_2_2_2 Parcelles Lysimétriques 0.5 0.5 0.1 0.1\n".encode("latin-1")
    path.write_bytes(f"{VALID}\n".encode() + latin1)
    with pytest.raises(AnnotationError, match=re.escape(f"{path}, line 2")) as err:
        read_annotations(path)
    assert err.value.reason == "encoding" and err.value.line_no == 2


# --- encodings and line endings ------------------------------------------------------------------

def test_crlf_and_bom_are_accepted(tmp_path):
    text = f"{VALID}\n6_6_2_5 {NON_ASCII_PROJECT} 0.4156901041666667 0.41650390625 0.5013 0.33203125\n"
    plain, dos = tmp_path / "plain.txt", tmp_path / "dos.txt"
    plain.write_bytes(text.encode("utf-8"))
    dos.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    boxes = read_annotations(dos)
    assert boxes == read_annotations(plain)
    assert boxes[0].votes == (1, 1, 3, 1) and boxes[1].project == NON_ASCII_PROJECT


def test_blank_lines_are_skipped_but_keep_line_numbers(tmp_path):
    path = tmp_path / "gaps.txt"
    path.write_text(f"\n{VALID}\n\n{VALID}\n", encoding="utf-8")
    assert [b.line_no for b in read_annotations(path)] == [2, 4]


def test_lone_cr_ends_a_line_and_form_feed_does_not(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(f"{VALID}\r{VALID}\r".encode())
    assert [b.line_no for b in read_annotations(path)] == [1, 2]
    path.write_bytes(f"{VALID}\n1_1_1_1 A\x0cB 0.5 0.5 0.1 0.1\nbad line here\n".encode())
    with pytest.raises(AnnotationError, match="line 3"):  # an editor's line 3
        read_annotations(path)


def test_fields_split_on_ascii_blanks_only():
    box = parse_line("2_2_2_2\tPEY\u00a0Benjamin  10_2007\t0.5 0.5 0.1 0.1")
    assert box.project == "PEY\u00a0Benjamin 10_2007"  # the no-break space stays in the name
    assert box.votes == (2, 2, 2, 2) and (box.xc, box.h) == (0.5, 0.1)


def test_to_pixels_clips_to_the_image():
    box = parse_line("0_0_0_0 VADEBIO 2010 0.05 0.5 0.2 0.5")
    assert box.to_pixels(3072, 2048) == (0, 512, 461, 1536)


# --- round trips and arbitrary input -----------------------------------------------------------

def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


# Project tokens as they appear in real names: no blanks, and not numbers with a
# fraction (a trailing ``0.5`` would read as an extra box column).
project_token = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=12
).filter(lambda t: t.split() == [t] and not _is_number(t))
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
positive = st.floats(min_value=5e-324, max_value=1.0, allow_nan=False)


@given(votes=st.tuples(*[st.integers(0, 8)] * 4), tokens=st.lists(project_token, min_size=1, max_size=5),
       xc=unit, yc=unit, w=positive, h=positive)
def test_format_and_parse_round_trip(votes, tokens, xc, yc, w, h):
    box = Box(votes, " ".join(tokens), xc, yc, w, h, line_no=1)
    assert parse_line(format_line(box)) == box


def _ascii_votes() -> st.SearchStrategy[str]:
    part = st.text("0123456789-+ab", min_size=0, max_size=3)
    return st.lists(part, min_size=1, max_size=6).map("_".join)


number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.text("0123456789.e-+_", max_size=6))
valid_votes = st.tuples(*[st.integers(0, 9)] * 4).map(lambda v: "_".join(map(str, v)))
near_valid = st.builds(  # mostly well-formed lines with a few broken or odd fields
    lambda v, p, nums: " ".join([v, *p, *nums]),
    st.one_of(valid_votes, _ascii_votes()), st.lists(project_token, max_size=3),
    st.lists(st.one_of(unit.map(repr), number), min_size=0, max_size=5),
)


@settings(max_examples=400)
@given(st.one_of(st.text(), near_valid))
def test_parse_line_returns_a_box_or_raises_annotation_error(text):
    try:
        box = parse_line(text, "f.txt", 7)
    except AnnotationError as err:
        assert err.line_no == 7 and "f.txt, line 7" in str(err)
    else:
        assert isinstance(box, Box) and len(box.votes) == 4 and all(0 <= v <= 8 for v in box.votes)
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in (box.xc, box.yc, box.w, box.h))
        assert box.w > 0 and box.h > 0


