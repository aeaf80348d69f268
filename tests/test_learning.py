"""Learning, end to end on the library's own path: photos + labels table -> crops stage ->
crop store -> training targets file -> ``fit_inputs`` -> every registered model.

The photos hold boxes whose class is visible (a colour and a shape: disc or stripes) on
grey noise; background squares (FOND) are cut by the crops stage itself. Every model must
reach a macro F1 far above chance on the held-out fold, and fall to chance when its
training labels are shuffled or sit one row off the crops: a pairing bug anywhere between
the labels table and the training arrays shows up here as a collapse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from springtail.common.classes import PROB_COLUMNS
from springtail.common.f1 import macro_f1
from springtail.common.policy import ErrorPolicy, SkipLog
from springtail.common.store import consensus_targets, load_crops, read_targets
from springtail.crops.build import build_crops
from springtail.crops.cutting import CropsConfig
from springtail.models.registry import MODELS, create_model
from springtail.models.training import TrainConfig, fit_inputs

from conftest import model_section, params_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CROP_PX = 32
PHOTO_PX, BOX_PX = 96, 32  # three boxes per photo, in the slots below
SLOTS = ((8, 8), (56, 8), (8, 56))  # top-left corners, pixels
PALETTE = np.array([[220, 40, 40], [40, 200, 40], [40, 60, 220], [230, 210, 40]])  # RGB
N_PHOTOS = 90  # 270 boxes of classes 0..7 + ~90 FOND squares; half held out (n_folds = 2)
LEARNED, CHANCE = 0.7, 0.3  # macro F1 over 9 classes: chance is about 0.1 (1.0 when learned here)

# Tiny networks at 32 px, 10 epochs, the validation fold never choosing the epoch.
TRAIN = params_config(TrainConfig, "train", epochs=10, batch_size=16, select_epoch="last", patience=0,
                      ema_decay=0.0, device="cpu", num_threads=1)
TINY = {
    "effnet": model_section("effnet", arch="test_efficientnet", pretrained=False, epochs=None),
    "vit_hybrid": model_section("vit_hybrid", arch="test_efficientnet", pretrained=False, epochs=None,
                                embed_dim=16, depth=1, num_heads=2),
    "resnet": model_section("resnet", arch="test_resnet", epochs=None),
    "convnext": model_section("convnext", arch="test_convnext", epochs=None),
    "vit": model_section("vit", arch="test_vit", patch_size=8, epochs=None),
    "cnn_xgb": model_section("cnn_xgb", arch="test_resnet", pretrained=False, finetune_epochs=10,
                             n_estimators=30, max_depth=3),
}



def springtail_like(label: int) -> tuple[np.ndarray, np.ndarray]:
    """(BOX_PX, BOX_PX) bool mask and RGB colour of class ``label`` (0..7): classes 0..3 a
    disc, 4..7 horizontal stripes, in one of four colours."""
    yy, xx = np.mgrid[:BOX_PX, :BOX_PX] + 0.5 - BOX_PX / 2
    if label < 4:
        mask = yy**2 + xx**2 < (0.4 * BOX_PX) ** 2
    else:
        mask = (np.abs(xx) < 0.4 * BOX_PX) & (np.abs(yy) < 0.4 * BOX_PX) & ((yy + BOX_PX / 2) // 4 % 2 == 0)
    return mask, PALETTE[label % 4]


def write_raw(root: Path, seed: int = 0) -> pd.DataFrame:
    """The raw layout (train/<id>.jpg, one test crop) and its consensus labels table."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for i in range(N_PHOTOS):
        photo = rng.integers(100, 140, (PHOTO_PX, PHOTO_PX, 3)).astype(np.uint8)  # grey noise
        for line, (x, y) in enumerate(SLOTS, start=1):
            label = int(rng.integers(0, 8))
            mask, colour = springtail_like(label)
            photo[y : y + BOX_PX, x : x + BOX_PX][mask] = colour
            rows.append({"image_id": f"im{i:03d}", "line": line, "xc": (x + BOX_PX / 2) / PHOTO_PX,
                         "yc": (y + BOX_PX / 2) / PHOTO_PX, "w": BOX_PX / PHOTO_PX, "h": BOX_PX / PHOTO_PX,
                         "label": label, "keep": True, **{c: float(k == label) for k, c in enumerate(PROB_COLUMNS)}})
        Image.fromarray(photo).save(root / "train" / f"im{i:03d}.jpg", quality=95)
    Image.fromarray(np.full((CROP_PX, CROP_PX, 3), 120, np.uint8)).save(root / "test" / "0.jpg")
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """A crops directory written by the crops stage's library function from the photos."""
    root = tmp_path_factory.mktemp("learning")
    labels = write_raw(root / "raw")
    config = params_config(CropsConfig, "crops", crop_px=CROP_PX, background_per_image=1.0, n_folds=2,
                           draft=False)
    build_crops(root / "raw", labels, root / "crops", config, SkipLog(ErrorPolicy("fail", 0)), workers=1)
    return root / "crops"


def held_out_f1(name: str, crops: Path, targets: pd.DataFrame, path: Path) -> float:
    """Write ``targets`` as the training targets file, train ``name`` through ``fit_inputs``
    and return its macro F1 on the held-out fold (scored against the crops' own labels)."""
    targets.to_csv(path, index=False)
    images, index = load_crops(crops, "train")
    inputs = fit_inputs(images, index, TRAIN.val_fold, read_targets(path))
    model = create_model(name, TINY[name], TRAIN, CROP_PX).fit(**inputs, progress=False)
    X_val, y_val = inputs["eval_set"]
    return macro_f1(y_val, model.predict_proba(X_val).argmax(axis=1))


def with_labels(targets: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``targets`` with its label and p0..p8 taken from rows ``order``; crop_id unchanged."""
    columns = ["label", *PROB_COLUMNS]
    moved = targets.copy()
    moved[columns] = targets[columns].to_numpy()[order]
    return moved


def test_the_data_has_every_class_on_both_sides(crops):
    index = load_crops(crops, "train")[1]
    for fold in (0, 1):
        assert set(index.loc[index["fold"] == fold, "label"]) == set(range(9))


def test_every_registered_model_has_a_learning_section():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_learns_the_classes_and_nothing_from_shuffled_labels(name, crops, tmp_path):
    targets = consensus_targets(load_crops(crops, "train")[1])
    learned = held_out_f1(name, crops, targets, tmp_path / "targets.csv")
    shuffled = with_labels(targets, np.random.default_rng(1).permutation(len(targets)))
    at_chance = held_out_f1(name, crops, shuffled, tmp_path / "targets.csv")
    assert learned >= LEARNED, f"{name}: held-out macro F1 {learned:.3f} on true labels"
    assert at_chance <= CHANCE, f"{name}: held-out macro F1 {at_chance:.3f} on shuffled labels"


def test_labels_one_row_off_their_crops_collapse_learning(crops, tmp_path):
    """The crop_id column still matches the store, but every label sits one row late: only
    learning can tell, and it does."""
    targets = consensus_targets(load_crops(crops, "train")[1])
    aligned = held_out_f1("resnet", crops, targets, tmp_path / "targets.csv")
    late = with_labels(targets, np.roll(np.arange(len(targets)), 1))
    assert (late["label"].to_numpy()[1:] == targets["label"].to_numpy()[:-1]).all()
    off = held_out_f1("resnet", crops, late, tmp_path / "targets.csv")
    assert aligned >= LEARNED and off <= CHANCE, (aligned, off)


def test_a_targets_file_one_row_off_the_store_is_refused_naming_the_file_and_line(crops, tmp_path):
    images, index = load_crops(crops, "train")
    targets = consensus_targets(index)
    path = tmp_path / "targets.csv"
    targets.iloc[1:].to_csv(path, index=False)  # the first crop's row lost: every row one up
    with pytest.raises(ValueError, match=r"targets.csv: .*\(line 2 has crop_id 1, expected 0"):
        fit_inputs(images, index, TRAIN.val_fold, read_targets(path))
    pd.concat([targets, targets.iloc[-1:]]).to_csv(path, index=False)  # one row too many
    with pytest.raises(ValueError, match=rf"targets.csv: .*\({len(index) + 1} rows for {len(index)} crops"):
        fit_inputs(images, index, TRAIN.val_fold, read_targets(path))
