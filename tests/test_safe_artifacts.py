"""No artifact is ever unpickled: a static check of src/ and stages/, and planted pickles
(whose unpickling would create a marker file) refused where a checkpoint, pretrained weights
or a crop shard is expected."""

from __future__ import annotations

import ast
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from corpus import REPO

from springtail.common.store import ShardWriter, load_crops, write_index
from springtail.models.registry import create_model, load_model
from springtail.models.training import TrainConfig

from conftest import model_section, params_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SOURCES = sorted([*(REPO / "src").rglob("*.py"), *(REPO / "stages").glob("*.py")])
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal"}
UNSAFE_CALLS = {"read_pickle", "to_pickle", "unsafe_load", "full_load"}  # pandas, PyYAML
REQUIRED = {  # (module alias, function) -> keyword that must be given as this constant
    ("torch", "load"): ("weights_only", True),
    ("np", "load"): ("allow_pickle", False),
    ("numpy", "load"): ("allow_pickle", False),
    ("np", "save"): ("allow_pickle", False),
    ("numpy", "save"): ("allow_pickle", False),
}
FORBIDDEN = {("torch", "save"): "torch.save writes a pickle; use safetensors",
             ("yaml", "load"): "yaml.load can build objects; use yaml.safe_load"}


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def unsafe_uses(source: str, name: str = "<string>") -> list[str]:
    """Every way ``source`` could unpickle (or pickle) an artifact, as 'file:line: why'."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            problems += [f"{where}: imports {a.name}" for a in node.names
                         if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in UNSAFE_MODULES:
                problems.append(f"{where}: imports from {node.module}")
            if module in ("torch", "numpy", "yaml") and any(a.name in ("load", "save")
                                                             for a in node.names):
                problems.append(f"{where}: imports load/save from {module} (call it qualified)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            if attr in UNSAFE_CALLS:
                problems.append(f"{where}: calls {attr}")
            if (owner, attr) in FORBIDDEN:
                problems.append(f"{where}: {FORBIDDEN[owner, attr]}")
            if (owner, attr) in REQUIRED:
                key, value = REQUIRED[owner, attr]
                if _keyword(node, key) is not value:
                    problems.append(f"{where}: {owner}.{attr} without {key}={value}")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                problems.append(f"{where}: allow_pickle other than False")
    return problems


def test_the_static_check_catches_every_unsafe_pattern():
    bad = ("import pickle\nimport joblib\nfrom dill import loads\nimport numpy as np\n"
           "import torch, yaml\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=True)\n"
           "np.save('a.npy', x)\ntorch.load('w.pth')\ntorch.load('w.pth', weights_only=False)\n"
           "torch.save(m, 'w.pth')\nyaml.load(s)\nyaml.unsafe_load(s)\npd.read_pickle('t')\n"
           "from torch import load\n")
    flagged = {int(p.split(":")[1]) for p in unsafe_uses(bad)}
    assert flagged == set(range(1, 16)) - {4, 5}  # every line but the two plain imports
    good = ("import numpy as np\nimport torch, yaml\nnp.load('a', allow_pickle=False)\n"
            "np.save('a', x, allow_pickle=False)\ntorch.load('w', weights_only=True)\n"
            "yaml.safe_load(s)\n# import pickle; torch.load(x) in a comment is fine\n")
    assert unsafe_uses(good) == []


def test_sources_never_unpickle():
    assert len(SOURCES) > 20
    problems = [p for path in SOURCES
                for p in unsafe_uses(path.read_text(encoding="utf-8"),
                                     str(path.relative_to(REPO)))]
    assert problems == []


# --- planted pickles --------------------------------------------------------------------------


class Planted:
    """Unpickling this creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


SIZE = 32
TRAIN = params_config(TrainConfig, "train", epochs=1, batch_size=8, device="cpu", num_threads=1)
TINY = {"resnet": model_section("resnet", arch="test_resnet", epochs=None),
        "cnn_xgb": model_section("cnn_xgb", arch="test_resnet", pretrained=False, finetune_epochs=1,
                                 n_estimators=4, max_depth=2)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """models/<name> directories as the train stage writes them, for two kinds of model."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (18, SIZE, SIZE, 3), dtype=np.uint8)
    y = np.arange(18) % 9
    root = tmp_path_factory.mktemp("models")
    for name, section in TINY.items():
        create_model(name, section, TRAIN, SIZE).fit(X[:9], y[:9], eval_set=(X[9:], y[9:])).save(
            root / name)
        load_model(root / name)  # the genuine checkpoint loads
    return {name: root / name for name in TINY}


def planted_copy(checkpoint: Path, tmp_path: Path, filename: str, payload: bytes) -> Path:
    directory = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, directory)
    (directory / filename).write_bytes(payload)
    return directory


@pytest.mark.parametrize("name, filename, payload", [
    ("resnet", "model.safetensors", "pickle"),
    ("resnet", "model.safetensors", "torch"),
    ("cnn_xgb", "model.safetensors", "pickle"),
    ("cnn_xgb", "model.ubj", "pickle"),
    ("resnet", "config.yaml", "yaml"),
])
def test_a_pickle_planted_in_a_checkpoint_is_refused(name, filename, payload, checkpoints,
                                                     tmp_path):
    marker = tmp_path / "code-ran"
    evil = {"fc.weight": torch.zeros(1), "payload": Planted(marker)}
    if payload == "torch":
        torch.save(evil, tmp_path / "evil.pt")
        data = (tmp_path / "evil.pt").read_bytes()
    elif payload == "yaml":
        data = f"!!python/object/apply:builtins.open ['{marker}', 'w']\n".encode()
    else:
        data = pickle.dumps(evil)
    directory = planted_copy(checkpoints[name], tmp_path, filename, data)
    with pytest.raises(Exception) as raised:
        load_model(directory)
    assert not marker.exists()
    # the format's own parser refused it (not, say, a missing file)
    assert type(raised.value).__name__ in ("SafetensorError", "XGBoostError", "ConstructorError",
                                           "ValueError"), raised.value


def test_a_planted_checkpoint_error_names_the_file(checkpoints, tmp_path):
    directory = planted_copy(checkpoints["resnet"], tmp_path, "model.safetensors",
                             pickle.dumps({"w": Planted(tmp_path / "code-ran")}))
    with pytest.raises(Exception, match=r"model\.safetensors"):
        load_model(directory)


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".pt"])
def test_a_pickle_given_as_pretrained_weights_is_refused(suffix, tmp_path):
    marker = tmp_path / "code-ran"
    weights = tmp_path / f"weights{suffix}"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Planted(marker)}, weights)
    X = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    for name in TINY:
        model = create_model(name, TINY[name] | {"pretrained": str(weights)}, TRAIN, SIZE)
        with pytest.raises(ValueError, match=rf"weights{suffix}: refused to load"):
            model.fit(X, np.arange(4))
    assert not marker.exists()


def test_a_pickled_object_array_in_a_crop_shard_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    writer = ShardWriter(tmp_path, "train", 8, shard_size=2)
    writer.extend(np.zeros((3, 8, 8, 3), np.uint8))
    writer.close()
    write_index(tmp_path, "train", pd.DataFrame({"crop_id": [0, 1, 2]}))
    assert load_crops(tmp_path, "train")[0].shape == (3, 8, 8, 3)
    with (tmp_path / "train_001.npy").open("wb") as fh:
        np.save(fh, np.array([Planted(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"train_001\.npy: refused to load: not a plain \.npy"):
        load_crops(tmp_path, "train")
    assert not marker.exists()
