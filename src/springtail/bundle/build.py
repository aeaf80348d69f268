"""Writing a model bundle: the selected members' checkpoints, the fitted combiner, the
detector, the crop and predict settings and class codes, a model card and a manifest.

The folder is written whole or not at all (a temporary sibling renamed over it) and
holds nothing pickled: safetensors, XGBoost's own formats, JSON and YAML.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from springtail.bundle.card import model_card
from springtail.bundle.load import CALIBRATION, CARD, COMBINER, DETECTOR, MEMBERS, PIPELINE
from springtail.bundle.manifest import FORMAT, MANIFEST, NAME, file_digests, package_versions
from springtail.common.classes import CODES
from springtail.common.config import to_dict
from springtail.common.io import atomic_directory, read_json, write_json
from springtail.crops.cutting import CropsConfig
from springtail.models.checkpoint import CONFIG, read_config
from springtail.models.inference import PredictConfig
from springtail.quantify import Calibration
from springtail.scoring.combiners import load_combiner


def copy_files(source: Path, dest: Path) -> None:
    """The files directly in ``source`` (a checkpoint or detector folder) into ``dest``.

    Raises:
        FileNotFoundError: naming ``source`` when it is missing or empty.
    """
    files = sorted(p for p in Path(source).iterdir() if p.is_file()) if Path(source).is_dir() else []
    if not files:
        raise FileNotFoundError(f"{source}: missing or empty (run `dvc repro` or `dvc pull`)")
    dest.mkdir(parents=True)
    for path in files:
        shutil.copyfile(path, dest / path.name)


def write_bundle(out: str | Path, *, models_dir: Path, ensemble_dir: Path, detector_dir: Path, calibration: Path,
                 crops: CropsConfig, predict: PredictConfig, metrics: dict[str, Any],
                 source: dict[str, Any]) -> dict[str, Any]:
    """Write the bundle folder ``out``; returns its manifest.

    Args:
        models_dir: the train stage's checkpoints, one folder per model.
        ensemble_dir: the ensemble stage's output (combiner.json, weights.json, val.csv).
        detector_dir: the detector stage's scorer.
        calibration: the detect stage's calibration of the species totals.
        metrics: the scores to carry (ensemble, detector, detect: the metrics files' contents).
        source: where it came from (params and data digests), recorded as given.

    Raises:
        FileNotFoundError / ValueError: naming the missing or inconsistent input.
    """
    combiner_path = Path(ensemble_dir) / COMBINER
    _, members = load_combiner(combiner_path)
    for name in members:
        trained_on = read_config(Path(models_dir) / name)["crop_size"]
        if trained_on != crops.crop_px:
            raise ValueError(f"{Path(models_dir) / name / CONFIG}: trained on {trained_on} px crops, but "
                             f"crops.crop_px = {crops.crop_px}")
    with atomic_directory(out) as tmp:
        shutil.copyfile(combiner_path, tmp / COMBINER)
        for name in members:
            copy_files(Path(models_dir) / name, tmp / MEMBERS / name)
        copy_files(Path(detector_dir), tmp / DETECTOR)
        Calibration.load(calibration)  # refuse a bad one here, not in a user's hands
        shutil.copyfile(calibration, tmp / CALIBRATION)
        write_json(tmp / PIPELINE, {"classes": list(CODES), "members": members,
                                    "crops": to_dict(crops), "predict": to_dict(predict)})
        summaries = {name: read_json(tmp / MEMBERS / name / "summary.json") for name in members}
        configs = {name: read_config(tmp / MEMBERS / name) for name in members}
        val = pd.read_csv(Path(ensemble_dir) / "val.csv")
        (tmp / CARD).write_text(model_card(members, configs, summaries, read_json(Path(ensemble_dir) / "weights.json"),
                                           val, metrics, source), encoding="utf-8")
        manifest = {"format": FORMAT, "name": NAME, "packages": package_versions(), "source": source,
                    "metrics": metrics, "files": file_digests(tmp)}
        write_json(tmp / MANIFEST, manifest)
    return manifest
