"""The training loop, its loss and schedule, the batch pipeline and the train/predict stages."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from springtail.common.store import ShardWriter, consensus_targets, load_crops, write_index
from springtail.models.augment import dihedral, jitter, prepare_batch, random_dihedral, to_chw
from springtail.models.registry import create_model
from springtail.models.training import (
    TrainConfig,
    class_weights,
    fit_inputs,
    make_targets,
    soft_cross_entropy,
    warmup_cosine,
)

from conftest import model_section, params_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REPO = Path(__file__).resolve().parents[1]
SIZE = 32



def patterned(labels: np.ndarray, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """(N, S, S, 3) uint8 crops whose class is visible: a bright square in a class-dependent
    channel and position, on noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (len(labels), size, size, 3))
    q = size // 4
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 3)
        images[i, r * q : r * q + q, col * q : col * q + q, c % 3] += 180
    return np.clip(images, 0, 255).astype(np.uint8)


def write_crops(directory: Path, n: int = 54, n_test: int = 20, n_folds: int = 3) -> Path:
    """A crops directory as the crops stage writes it (store contract), with patterned crops."""
    labels = np.arange(n) % 9
    writer = ShardWriter(directory, "train", SIZE, shard_size=32)  # two shards
    writer.extend(patterned(labels))
    writer.close()
    soft = np.eye(9)[labels] * 0.9 + 0.1 / 9
    index = pd.DataFrame({
        "crop_id": range(n), "image_id": [f"0.{i // 2:04d}" for i in range(n)], "line": 1,
        "source": np.where(labels == 8, "background", "box"), "label": labels,
        **{f"p{c}": soft[:, c] for c in range(9)}, "fold": (np.arange(n) // 2) % n_folds,
        "x0": 0, "y0": 0, "x1": SIZE, "y1": SIZE})
    write_index(directory, "train", index)
    writer = ShardWriter(directory, "test", SIZE)
    writer.extend(patterned(np.arange(n_test) % 9, seed=1))
    writer.close()
    write_index(directory, "test", pd.DataFrame({"crop_id": range(n_test), "idx": [f"0.5{i:03d}" for i in range(n_test)]}))
    return directory


def test_class_weights_are_inverse_frequency():
    targets = F.one_hot(torch.tensor([0, 0, 0, 1]), 9).float()
    weights = class_weights(targets)
    assert weights[0].item() == pytest.approx(4 / (2 * 3))
    assert weights[1].item() == pytest.approx(4 / (2 * 1))
    assert weights[2:].abs().sum().item() == 0  # absent classes
    assert (weights @ targets.sum(0)).item() == pytest.approx(4)  # an average sample weighs 1


def test_soft_cross_entropy_matches_torch_on_hard_labels():
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 9), torch.tensor([0, 1, 1, 2, 8, 8, 8])
    onehot = F.one_hot(labels, 9).float()
    w = torch.rand(9)
    assert soft_cross_entropy(logits, onehot).item() == pytest.approx(F.cross_entropy(logits, labels).item())
    assert soft_cross_entropy(logits, onehot, w).item() == pytest.approx(
        F.cross_entropy(logits, labels, weight=w).item(), rel=1e-6)


def test_targets_are_smoothed_distributions():
    soft = np.zeros((2, 9))
    soft[0, 3], soft[1, [1, 2]] = 2.0, 1.0  # unnormalised on purpose
    t = make_targets(np.array([3, 1]), soft, smoothing=0.1)
    np.testing.assert_allclose(t.sum(1).numpy(), 1, rtol=1e-6)
    assert t[0, 3].item() == pytest.approx(0.9 + 0.1 / 9)
    assert t[1, 1].item() == pytest.approx(t[1, 2].item())
    hard = make_targets(np.array([4]), None, smoothing=0.0)
    assert hard[0].argmax().item() == 4 and hard.max().item() == 1


def test_warmup_then_cosine():
    f = warmup_cosine(warmup_steps=4, total_steps=20)
    values = [f(s) for s in range(20)]
    assert values[0] == pytest.approx(0.25) and values[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[3:], values[4:]))
    assert values[-1] < 0.02


def test_the_eight_symmetries_are_distinct_and_random_ones_belong_to_them():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).view(2, 3, 5, 5)
    views = [dihedral(x, k) for k in range(8)]
    assert len({v[0].numpy().tobytes() for v in views}) == 8
    out = random_dihedral(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    for i in range(2):
        assert any(torch.equal(out[i], v[i]) for v in views)


def test_batch_pipeline_normalises_and_jitters_within_range():
    batch = to_chw(patterned(np.arange(4)))
    plain = prepare_batch(batch, (0.5,) * 3, (0.25,) * 3)
    torch.testing.assert_close(plain, (batch.float() / 255 - 0.5) / 0.25)
    jittered = jitter(batch.float() / 255, torch.Generator().manual_seed(0))
    assert jittered.min() >= 0 and jittered.max() <= 1 and not torch.equal(jittered, batch.float() / 255)
    augmented = prepare_batch(batch, (0.5,) * 3, (0.25,) * 3, channels_last=True,
                              generator=torch.Generator().manual_seed(0))
    assert augmented.is_contiguous(memory_format=torch.channels_last)


def test_fit_inputs_split_by_fold(tmp_path):
    from springtail.common.store import load_crops

    images, index = load_crops(write_crops(tmp_path), "train")
    inputs = fit_inputs(images, index, val_fold=1)
    n_val = int((index["fold"] == 1).sum())
    assert len(inputs["eval_set"][0]) == n_val and len(inputs["X"]) == len(index) - n_val
    assert inputs["soft_targets"].shape == (len(index) - n_val, 9)
    with pytest.raises(ValueError, match="val_fold = 7"):
        fit_inputs(images, index, val_fold=7)


def fit_resnet(patience=2, epochs=4, seed=0, **train_overrides):
    labels = np.arange(45) % 9
    X = patterned(labels)
    train = params_config(TrainConfig, "train", epochs=epochs, batch_size=9, patience=patience, seed=seed,
                          device="cpu", **{"select_epoch": "best", "ema_decay": 0.0,
                                                           **train_overrides})
    model = create_model("resnet", model_section("resnet", arch="test_resnet", epochs=None), train, SIZE)
    return model.fit(X[:27], labels[:27], eval_set=(X[27:], labels[27:])), X


def test_best_epoch_weights_are_kept_and_training_is_seeded():
    model, X = fit_resnet()
    history = model.result_.history
    f1s = [h["val_macro_f1"] for h in history]
    assert model.result_.best_epoch == int(np.argmax(f1s)) + 1
    from springtail.common.f1 import macro_f1

    y_val = (np.arange(45) % 9)[27:]
    assert macro_f1(y_val, model.predict(X[27:])) == pytest.approx(max(f1s))
    again, _ = fit_resnet()
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    other, _ = fit_resnet(seed=1)
    assert not np.array_equal(other.predict_proba(X), model.predict_proba(X))


def test_last_epoch_with_weight_averaging_is_kept_whatever_validation_says():
    """select_epoch: last keeps the final epoch's (averaged) weights: validation chooses nothing."""
    plain, X = fit_resnet(patience=1, epochs=4, select_epoch="last")
    assert plain.result_.best_epoch == 4 and len(plain.result_.history) == 4  # no early stop either
    averaged, _ = fit_resnet(patience=1, epochs=4, select_epoch="last", ema_decay=0.9)
    assert averaged.result_.best_epoch == 4
    assert averaged.result_.history[-1]["val_macro_f1"] == pytest.approx(averaged.result_.val_macro_f1)
    # the averaged weights differ from the raw ones of the same run
    assert not np.array_equal(averaged.predict_proba(X), plain.predict_proba(X))


def test_unknown_epoch_selection_and_bad_decay_are_named():
    with pytest.raises(ValueError, match="train.select_epoch"):
        params_config(TrainConfig, "train", select_epoch="middle")
    with pytest.raises(ValueError, match="train.ema_decay"):
        params_config(TrainConfig, "train", ema_decay=1.0)


def run_stage(name: str, argv: list[str]):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def tiny_params(path: Path, **train) -> Path:
    params = yaml.safe_load((REPO / "params.tiny.yaml").read_text())
    params["train"].update({"epochs": 1, "num_threads": 1, "device": "cpu", **train})
    path.write_text(yaml.safe_dump(params))
    return path


def write_targets(crops: Path, path: Path) -> Path:
    """The review stage's targets without a second pass: the crops' own consensus labels."""
    consensus_targets(load_crops(crops, "train")[1]).to_csv(path, index=False)
    return path


def test_train_and_predict_stages_write_the_contract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crops, params = write_crops(tmp_path / "crops"), tiny_params(tmp_path / "params.yaml")
    targets = write_targets(crops, tmp_path / "targets.csv")
    run_stage("train", ["--model", "vit", "--crops", str(crops), "--targets", str(targets), "--out", "models/vit",
                        "--live", "dvclive/vit", "--timing", "timing/vit.json",
                        "--params", str(params)])
    config = yaml.safe_load(Path("models/vit/config.yaml").read_text())
    assert config["crop_size"] == SIZE and config["val_fold"] == 0 and config["classes"][8] == "FOND"
    assert config["model"]["arch"] == "test_vit" and config["train"]["epochs"] == 1
    summary = json.loads(Path("models/vit/summary.json").read_text())
    assert summary["best_epoch"] == 1 and 0 <= summary["val_macro_f1"] <= 1
    assert "seconds" not in summary  # timings would change the checkpoint's hash on every run
    assert json.loads(Path("timing/vit.json").read_text())["seconds"] > 0
    tsv = pd.read_csv("dvclive/vit/plots/metrics/val_macro_f1.tsv", sep="\t")
    assert list(tsv["step"]) == [0]
    assert not Path("dvc.yaml").exists() and not Path("dvclive/dvc.yaml").exists()
    run_stage("predict", ["--model", "vit", "--crops", str(crops), "--checkpoint", "models/vit",
                          "--out", "pred/vit", "--params", str(params)])
    val = pd.read_csv("pred/vit/val.csv", dtype={"image_id": str})
    test = pd.read_csv("pred/vit/test.csv", dtype={"idx": str})
    assert list(val.columns) == ["crop_id", "image_id", "label", *[f"p{c}" for c in range(9)]]
    assert len(val) == 18 and val["image_id"].iloc[0] == "0.0000"
    assert test["idx"].tolist() == [f"0.5{i:03d}" for i in range(20)]
    np.testing.assert_allclose(test.iloc[:, 1:].sum(axis=1), 1, atol=1e-6)
    with pytest.raises(ValueError, match="holds model 'vit'"):
        run_stage("predict", ["--model", "resnet", "--crops", str(crops), "--checkpoint", "models/vit",
                              "--out", "pred/x", "--params", str(params)])


def train_in_subprocess(tmp_path: Path, crops: Path, name: str, nproc: int) -> dict:
    """The train stage as dvc runs it (its own process); returns the checkpoint's summary."""
    params = tiny_params(tmp_path / f"{name}.yaml", nproc=nproc, epochs=3)
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py"), "--model", "resnet", "--crops", str(crops),
         "--targets", str(write_targets(crops, tmp_path / "targets.csv")), "--out", str(tmp_path / name), "--live", str(tmp_path / f"live-{name}"),
         "--timing", str(tmp_path / f"{name}.timing.json"), "--params", str(params)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((tmp_path / name / "summary.json").read_text())


@pytest.mark.slow
def test_distributed_training_under_torchrun(tmp_path):
    """2 processes (DDP, gloo) train a checkpoint that loads and scores like 1 process's."""
    from springtail.common.f1 import macro_f1
    from springtail.models.registry import load_model

    crops = write_crops(tmp_path / "crops")
    one = train_in_subprocess(tmp_path, crops, "one", nproc=1)
    two = train_in_subprocess(tmp_path, crops, "two", nproc=2)
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["epochs_run"] == 3
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())  # rank 0 alone wrote, the same files
    model = load_model(tmp_path / "two")  # the checkpoint rank 0 wrote loads on its own
    images, index = load_crops(crops, "train")
    val = index["fold"].to_numpy() == 0
    probs = model.predict_proba(images[val])
    f1 = macro_f1(index["label"].to_numpy()[val], probs.argmax(axis=1))
    assert np.isfinite(probs).all() and np.isfinite(two["val_macro_f1"])
    assert f1 == pytest.approx(two["val_macro_f1"], abs=1e-6)
    # Same data and seed, each rank seeing half of every epoch: in line with one process.
    assert abs(two["val_macro_f1"] - one["val_macro_f1"]) <= 0.25, (one, two)


def test_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from springtail.models import inference

    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: False)
    assert inference.Runtime.resolve("cpu", "bf16", True).precision == "fp32"  # emulated bf16 is 10-40x slower
    assert inference.Runtime.resolve("cpu", "auto", "auto", "resnet18").precision == "fp32"
    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: True)
    runtime = inference.Runtime.resolve("cpu", "bf16", False)
    assert runtime.precision == "bf16" and not runtime.channels_last and runtime.rule == "forced"
    with runtime.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert inference.Runtime.resolve("cpu", "fp32", True).precision == "fp32"


@pytest.mark.parametrize("native, arch, expected", [
    (True, "tf_efficientnet_lite0", ("fp32", True, "cpu_bf16/efficientnet")),  # bf16: 0.8x of fp32 CL
    (True, "resnet18", ("bf16", True, "cpu_bf16/resnet")),  # 1.9x of fp32 CL
    (True, "vit_tiny_patch16_224", ("bf16", False, "cpu_bf16/vit")),
    (True, "convnext_atto", ("fp32", True, "cpu_bf16/convnext")),
    (True, "some_new_net", ("fp32", True, "cpu_bf16/other")),
    (False, "resnet18", ("fp32", True, "cpu/resnet")),
    (False, "vit_tiny_patch16_224", ("fp32", False, "cpu/vit")),
])
def test_auto_precision_is_the_table_row_of_the_machine_and_family(monkeypatch, native, arch, expected):
    from springtail.models import inference

    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: native)
    runtime = inference.Runtime.resolve("cpu", "auto", "auto", arch)
    assert (runtime.precision, runtime.channels_last, runtime.rule) == expected
    forced = inference.Runtime.resolve("cpu", "fp32", False, arch)  # forced values win over the table
    assert (forced.precision, forced.channels_last, forced.rule) == ("fp32", False, "forced")
    half = inference.Runtime.resolve("cpu", "auto", False, arch)  # one forced, one auto
    assert half.channels_last is False and half.rule == expected[2]


def test_a_bad_precision_names_the_file_and_key(tmp_path):
    from springtail.common.config import load_section

    section = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    path = tmp_path / "params.yaml"
    for key, bad in (("precision", "fp8"), ("channels_last", "yes")):
        path.write_text(yaml.safe_dump({"train": {**section, key: bad}}))
        with pytest.raises(ValueError, match=rf"params\.yaml.*{key}.*{bad}"):
            load_section(TrainConfig, "train", path)


def test_a_checkpoint_keeps_the_precision_it_was_trained_in(monkeypatch):
    """auto is resolved once, when training: a checkpoint saved on a bf16 CPU stays bf16 where
    it is loaded (the trees of cnn_xgb were fitted on those features), and loads as fp32 on a
    CPU without native bf16 instead of failing."""
    from springtail.models import inference
    from springtail.models.timm_net import TimmClassifier

    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: True)
    train = params_config(TrainConfig, "train", "params.tiny.yaml", device="cpu")
    model = create_model("resnet", model_section("resnet", arch="test_resnet", pretrained=False), train, SIZE)
    model.norm_ = ((0.5,) * 3, (0.25,) * 3)
    model.net_ = model._build()[0]
    saved = model.resolved_config()
    assert (saved["train"]["precision"], saved["train"]["channels_last"], saved["model"]["precision"]) == (
        "bf16", True, None)  # the table's row for resnet on a bf16 CPU, written out
    loaded = TimmClassifier(model.config.__class__(**saved["model"]), TrainConfig(**saved["train"]), SIZE)
    assert loaded.runtime().precision == "bf16" and loaded.runtime().rule == "forced"
    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: False)
    assert loaded.runtime().precision == "fp32"


def test_the_benchmarks_plain_loop_and_pipeline_step_each_take_a_training_step():
    """make bench's two loops: the pipeline's real step (make_loop + train_epoch) and the plain
    loop in a forced variant each change the network's weights and time one step."""
    from benchmarks import nets, plain
    from springtail.common.config import load_params

    params = load_params(REPO / "params.tiny.yaml")
    spec = nets.net_spec("resnet", params, SIZE)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (2 * spec.train.batch_size, 3, SIZE, SIZE), dtype=np.uint8))
    labels = rng.integers(0, 9, len(images))
    auto = spec.runtime()
    assert plain.variant_of(auto) in plain.VARIANTS and auto.rule.endswith("/resnet")
    forced = spec.runtime("fp32", False)
    assert plain.variant_of(forced) == "fp32" and forced.rule == "forced"
    for net, step in (
        (n := spec.build(), nets.PipelineSteps(spec, n, images, nets.soft_targets(labels, spec.train))),
        (m := spec.build(), plain.PlainSteps(m, images, labels, ((0.5,) * 3, (0.25,) * 3), forced,
                                             spec.train.batch_size, spec.lr, 0.0)),
    ):
        before = [p.detach().clone() for p in net.parameters()]
        assert step() > 0
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


KEEP_FREED = """
import sys
import numpy as np
from springtail.common.runtime import keep_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

took = keep_freed_memory() if sys.argv[1] == "keep" else False
before = rss_mb()
block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MB, every page touched
del block
print(took, round(rss_mb() - before))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_activations_stay_in_the_process_only_when_asked():
    """Without the setting glibc unmaps a freed 200 MB block at once (the next batch pays
    page faults again); with it the block stays in the heap for reuse."""
    def run(mode):
        out = subprocess.run([sys.executable, "-c", KEEP_FREED, mode], capture_output=True, text=True,
                             check=True, cwd=REPO, env={"PYTHONPATH": str(REPO / "src")})
        took, kept_mb = out.stdout.split()
        return took == "True", int(kept_mb)

    took, kept_mb = run("default")
    assert not took and kept_mb < 20
    took, kept_mb = run("keep")
    assert took and kept_mb >= 190
