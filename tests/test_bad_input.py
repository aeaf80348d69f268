"""Bad input: every case of tests/corpus.py through the real consensus and crops stages under
``data.on_error: fail`` and ``skip``; the submission's idx checks; the YOLO+ parser on
arbitrary bytes (hypothesis)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from corpus import (
    CASES,
    IMAGES,
    LINE_1,
    REPO,
    TEST_IDS,
    TEST_VICTIM,
    VICTIM,
    Case,
    write_clean,
    write_params,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from springtail.common.policy import DataError, ErrorPolicy, SkipLog, TooManySkipped
from springtail.common.store import load_crops
from springtail.common.yolo import AnnotationError, Box, decode_text, format_line, parse_line, parse_text
from springtail.labels.annotations import read_boxes

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class")


def load_stage(name: str):
    """A stage script as a module, so its ``main(argv)`` runs in this process."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONSENSUS, CROPS, SUBMISSION = (load_stage(n) for n in ("consensus", "crops", "submission"))
BAD = [c for c in CASES if c.reason is not None]
VALID = [c for c in CASES if c.reason is None]
ids = [c.name for c in CASES]


def run_consensus(raw: Path, work: Path, params: Path) -> None:
    CONSENSUS.main(["--raw-dir", str(raw), "--labels", str(work / "labels.csv"),
                    "--disputed", str(work / "disputed.csv"),
                    "--metrics", str(work / "consensus.json"), "--params", str(params)])


def run_crops(raw: Path, work: Path, params: Path) -> None:
    CROPS.main(["--raw-dir", str(raw), "--labels", str(work / "labels.csv"),
                "--out", str(work / "crops"), "--metrics", str(work / "crops.json"),
                "--timing", str(work / "crops.timing.json"), "--params", str(params)])


def run_judge(case: Case, raw: Path, work: Path, params: Path) -> None:
    """Run the stage that judges ``case`` (crops: after the consensus stage)."""
    run_consensus(raw, work, params)
    if case.stage == "crops":
        run_crops(raw, work, params)


def metrics(work: Path, stage: str) -> dict:
    return json.loads((work / f"{stage}.json").read_text(encoding="utf-8"))


def snapshot(directory: Path) -> dict[str, str]:
    """md5 of every file under ``directory``, hidden ones included."""
    return {p.relative_to(directory).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def temporaries(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_clean(tmp_path_factory.mktemp("corpus") / "raw")


@pytest.fixture(scope="module")
def previous(clean, tmp_path_factory) -> Path:
    """Both stages' outputs on the clean layout: what a failing run must leave untouched."""
    work = tmp_path_factory.mktemp("previous")
    params = write_params(work.parent / f"{work.name}.yaml", "fail", 0)
    run_consensus(clean, work, params)
    run_crops(clean, work, params)
    return work


@pytest.fixture
def setup(clean, previous, tmp_path):
    """(case) -> (damaged raw dir, work dir holding the previous outputs)."""
    def make(case: Case) -> tuple[Path, Path]:
        work = tmp_path / "work"
        shutil.copytree(previous, work)
        return case.build(clean, tmp_path / "raw"), work
    return make


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_fail_stops_naming_the_file_and_keeps_previous_outputs(case, setup, tmp_path):
    raw, work = setup(case)
    params = write_params(tmp_path / "params.yaml", "fail", 0)
    if case.stage == "crops":
        run_consensus(raw, work, params)  # the annotations are fine: consensus accepts them
    before = snapshot(work)
    judge = run_consensus if case.stage == "consensus" else run_crops
    with pytest.raises((AnnotationError, DataError), match=case.fail) as raised:
        judge(raw, work, params)
    assert raised.value.reason in case.skipped
    assert snapshot(work) == before  # nothing produced before is lost or truncated
    assert temporaries(work) == []


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_skip_leaves_the_record_out_and_counts_it(case, setup, tmp_path):
    raw, work = setup(case)
    run_judge(case, raw, work, write_params(tmp_path / "params.yaml", "skip", 10))
    skipped = metrics(work, case.stage)["skipped"]
    assert skipped["by_reason"] == case.skipped
    assert skipped["total"] == sum(case.skipped.values())
    assert all(r in skipped["examples"] for r in case.skipped)
    labels = pd.read_csv(work / "labels.csv", dtype={"image_id": str})
    assert (labels["image_id"] != VICTIM).sum() == 2 * (len(IMAGES) - 1)  # the others intact
    if ", line 2: " in case.fail:  # a bad second line: the first stays
        assert labels.loc[labels["image_id"] == VICTIM, "line"].tolist() == [1]
    if case.stage == "crops":
        assert metrics(work, "consensus")["skipped"]["total"] == 0
        _, train = load_crops(work / "crops", "train")
        _, test = load_crops(work / "crops", "test")
        victim_gone = "test" not in case.reason
        assert (VICTIM not in set(train["image_id"])) == victim_gone
        assert test["idx"].astype(str).tolist() == [
            i for i in TEST_IDS if victim_gone or i != TEST_VICTIM]


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_skip_still_stops_past_max_skipped(case, setup, tmp_path):
    raw, work = setup(case)
    total = sum(case.skipped.values())
    params = write_params(tmp_path / "params.yaml", "skip", total - 1)
    if case.stage == "crops":
        run_consensus(raw, work, params)
    before = snapshot(work)
    with pytest.raises(TooManySkipped, match=rf"{total} record\(s\) skipped, more than "
                                             rf"data.max_skipped={total - 1}"):
        (run_consensus if case.stage == "consensus" else run_crops)(raw, work, params)
    assert snapshot(work) == before and temporaries(work) == []


@pytest.mark.parametrize("policy", ["fail", "skip"])
@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_valid_oddities_are_accepted_by_both_policies(case, policy, setup, previous, tmp_path):
    raw, work = setup(case)
    run_judge(case, raw, work, write_params(tmp_path / "params.yaml", policy, 0))
    assert metrics(work, case.stage)["skipped"]["total"] == 0
    if case.name == "same_box_other_votes":
        labels = pd.read_csv(work / "labels.csv", dtype={"image_id": str})
        assert labels.loc[labels["image_id"] == VICTIM, "line"].tolist() == [1, 2]
    elif case.stage == "consensus":  # line ends, BOM, tabs: the very same table
        assert (work / "labels.csv").read_bytes() == (previous / "labels.csv").read_bytes()


def victim_crops(work: Path) -> np.ndarray:
    """(n, S, S, 3) uint8: the victim image's crops (boxes, then background squares)."""
    images, index = load_crops(work / "crops", "train")
    return images[(index["image_id"] == VICTIM).to_numpy()]


def luminance(crops: np.ndarray) -> np.ndarray:
    return crops.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.mark.parametrize("case", [c for c in VALID if c.stage == "crops"],
                         ids=[c.name for c in VALID if c.stage == "crops"])
def test_converted_images_crop_the_same_pixels(case, setup, previous, tmp_path):
    """Grey, CMYK, 16-bit, PNG and EXIF-rotated versions of the image give the clean crops:
    the boxes land on the same pixels (an ignored EXIF rotation would miss the red box)."""
    raw, work = setup(case)
    run_judge(case, raw, work, write_params(tmp_path / "params.yaml", "fail", 0))
    got, want = victim_crops(work), victim_crops(previous)
    _, index = load_crops(work / "crops", "train")
    _, clean_index = load_crops(previous / "crops", "train")
    assert index.equals(clean_index)  # same boxes, same background squares, same pixels
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.abs(luminance(got) - luminance(want)).mean() < 4.0
    if case.name in ("grayscale_jpeg", "sixteen_bit_png_named_jpg"):
        assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    else:
        assert np.abs(got.astype(int) - want).mean() < 4.0
        red = got[0, 6:10, 6:10].reshape(-1, 3).mean(axis=0)  # centre of the line-1 box crop
        assert red[0] > 180 and red[1] < 70


# --- submission: the test crops and sample_submission.csv must hold the same idx -------------


def ensemble_dir(root: Path, test_ids: list[str]) -> Path:
    """A hand-made ensemble output: val.csv, test.csv (one row per idx), weights.json."""
    root.mkdir(parents=True)
    proba = {f"p{k}": [1.0 if k == 2 else 0.0] * len(test_ids) for k in range(9)}
    pd.DataFrame({"idx": test_ids, **proba}).to_csv(root / "test.csv", index=False)
    val = {f"p{k}": [1.0 if k == 2 else 0.0] * 2 for k in range(9)}
    pd.DataFrame({"crop_id": [0, 1], "image_id": ["a", "b"], "label": [2, 3], **val}).to_csv(
        root / "val.csv", index=False)
    (root / "weights.json").write_text(json.dumps(
        {"method": "mean", "model_val_macro_f1": {"resnet": 0.5}}), encoding="utf-8")
    return root


def run_submission(raw: Path, ensemble: Path, out: Path) -> None:
    SUBMISSION.main(["--raw-dir", str(raw), "--ensemble", str(ensemble),
                     "--out", str(out / "submission.csv"), "--metrics", str(out / "ensemble.json"),
                     "--plots", str(out / "plots"), "--params", str(REPO / "params.yaml")])


@pytest.mark.parametrize("test_ids, message", [
    (["0", "1", "2", "3"], r"test\.csv: idx not in .*sample_submission\.csv: '3'"),
    (["0", "2"], r"test\.csv: idx of .*sample_submission\.csv missing: '1'"),
    (["0", "1", "1", "2"], r"test\.csv: duplicate idx '1'"),
])
def test_submission_stops_on_idx_that_do_not_match_the_sample(test_ids, message, clean,
                                                               tmp_path):
    out = tmp_path / "out"
    run_submission(clean, ensemble_dir(tmp_path / "good", list(TEST_IDS)), out)
    before = snapshot(out)
    assert pd.read_csv(out / "submission.csv", dtype={"idx": str})["idx"].tolist() == list(
        TEST_IDS)
    with pytest.raises(ValueError, match=message):
        run_submission(clean, ensemble_dir(tmp_path / "bad", test_ids), out)
    assert snapshot(out) == before and temporaries(out) == []


def test_a_skipped_test_crop_stops_the_submission(setup, tmp_path):
    """Under skip an unreadable test crop is left out of the crops, and Kaggle needs a row for
    every idx: the submission stage then names the missing idx."""
    case = next(c for c in CASES if c.name == "unreadable_test_crop")
    raw, work = setup(case)
    run_judge(case, raw, work, write_params(tmp_path / "params.yaml", "skip", 1))
    _, test = load_crops(work / "crops", "test")
    with pytest.raises(ValueError, match=rf"missing: '{TEST_VICTIM}'"):
        run_submission(raw, ensemble_dir(tmp_path / "ens", test["idx"].astype(str).tolist()),
                       tmp_path / "out")


# --- the YOLO+ parser on arbitrary input (hypothesis) ------------------------------------

FIELD = st.one_of(
    st.sampled_from(["1_1_1_1", "0_8_3_2", "1_1_1", "1_1_1_9", "a_b_c_d", "0.5", "1", "0", "-0.1",
                     "1.5", "nan", "inf", "1e-3", "0,5", "2007", "TIDM_URBA/DIJON2021_2/3", "é",
                     "\u00b2", "\ufeff", "", "\xa0"]),
    st.text(max_size=6),
)
LINE = st.lists(FIELD, max_size=12).map(" ".join)
SEPARATOR = st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\t\n"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_annotation_errors(data):
    try:
        boxes = parse_text(decode_text(data, "f.txt"), "f.txt")
    except AnnotationError as err:
        assert str(err).startswith("f.txt, line ") and err.line_no >= 1 and err.reason
        return
    assert all(0 <= v <= 1 for b in boxes for v in (b.xc, b.yc, b.w, b.h))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LINE, SEPARATOR), max_size=5))
def test_near_miss_lines_raise_nothing_but_annotation_errors(lines):
    text = "".join(line + sep for line, sep in lines)
    try:
        boxes = parse_text(text, "f.txt")
    except AnnotationError as err:
        assert str(err).startswith(f"f.txt, line {err.line_no}: ") and err.reason
        return
    for box in boxes:
        assert len(box.votes) == 4 and all(0 <= v <= 8 for v in box.votes)
        assert 0 < box.w <= 1 and 0 < box.h <= 1 and 1 <= len(box.project.split(" ")) <= 5


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(LINE, st.just(LINE_1)), SEPARATOR), max_size=6),
       st.binary(max_size=20))
@example(lines=[("\ufeff", "\n")], junk=b"\x80")  # a BOM, then a bad byte on line 2
def test_skip_accounts_for_every_line(tmp_path_factory, lines, junk):
    """Under skip each non-blank line is either a box or one counted record (an empty file is
    one record), and never anything but TooManySkipped past the limit."""
    data = "".join(line + sep for line, sep in lines).encode("utf-8") + junk
    path = tmp_path_factory.mktemp("hyp") / "f.txt"
    path.write_bytes(data)
    log = SkipLog(ErrorPolicy("skip", 10**6))
    boxes = read_boxes(path, log)
    pieces = data.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    pieces[0] = pieces[0].removeprefix("\xef\xbb\xbf")
    non_blank = sum(1 for p in pieces if p.encode("latin-1").strip(b" \t\v\f"))
    assert len(boxes) + log.total == max(non_blank, 1)
    try:
        strict = read_boxes(path, SkipLog(ErrorPolicy("fail", 0)))
    except AnnotationError:
        assert log.total >= 1
    else:
        assert strict == boxes and log.total == 0
    if log.total:
        with pytest.raises(TooManySkipped):
            read_boxes(path, SkipLog(ErrorPolicy("skip", log.total - 1)))


PROJECT_TOKEN = st.text(st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters=" \t\v\f\r\n"),
                        min_size=1, max_size=8).filter(
    lambda t: not set(t) <= set("0123456789.eE+-"))  # a number would end the project
UNIT = st.floats(0, 1, allow_nan=False).filter(lambda v: v > 0)


@settings(max_examples=200, deadline=None)
@given(st.tuples(*[st.integers(0, 8)] * 4), st.lists(PROJECT_TOKEN, min_size=1, max_size=5),
       UNIT, UNIT, UNIT, UNIT)
def test_valid_lines_round_trip(votes, project, xc, yc, w, h):
    box = Box(votes, " ".join(project), xc, yc, w, h, 7)
    assert parse_line(format_line(box), "f.txt", 7) == box


def test_a_bad_byte_after_a_byte_order_mark_is_named_on_its_line():
    """A BOM shifts the decoder's own error positions: the line and column must not."""
    with pytest.raises(AnnotationError, match=r"f.txt, line 2: not valid UTF-8: byte\(s\) b'\\x80' at column 1"):
        decode_text("\ufeff\n".encode() + b"\x80", "f.txt")
