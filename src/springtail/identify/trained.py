"""A trained pipeline, loaded from its outputs, that identifies new crops exactly as the
pipeline identified the competition's test crops.

What it reads (all written by ``dvc repro``, or fetched by ``dvc pull``):
``params.yaml`` (crops, predict, ensemble sections), ``models/<model>/`` (checkpoints),
``data/processed/predictions/<model>/val.csv`` (to refit the ensemble's combiner, which is
deterministic) and ``data/processed/ensemble/weights.json`` (the members it selected).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from springtail.common.classes import N_CLASSES
from springtail.common.config import load_section
from springtail.common.io import read_json
from springtail.common.store import read_predictions
from springtail.crops.cutting import CropsConfig
from springtail.models.inference import PredictConfig
from springtail.models.registry import load_model
from springtail.scoring.ensemble import EnsembleConfig, final_combiner


@dataclass
class TrainedPipeline:
    """The ensemble's members, its fitted combiner, and the crop and predict settings."""

    members: dict[str, Any]  # model name -> fitted classifier (registry contract)
    combiner: Any  # fitted on the members' validation predictions, as the ensemble stage did
    crops: CropsConfig
    predict: PredictConfig

    @classmethod
    def load(cls, root: str | Path = ".", params: str | Path | None = None) -> TrainedPipeline:
        """Load the pipeline whose outputs are under ``root`` in the layout of its dvc.yaml
        (its own params file by default); see :meth:`from_outputs`."""
        root = Path(root)
        return cls.from_outputs(root / "models", root / "data/processed/predictions",
                                root / "data/processed/ensemble", root / "params.yaml" if params is None else params)

    @classmethod
    def from_outputs(cls, models_dir: Path, predictions: Path, ensemble: Path, params: str | Path) -> TrainedPipeline:
        """Load from the train, predict and ensemble stages' output folders.

        Raises:
            FileNotFoundError: naming the missing output (run ``dvc repro`` or ``dvc pull``).
            ValueError: a checkpoint trained on another crop size than ``crops.crop_px``.
        """
        weights_path = Path(ensemble) / "weights.json"
        if not weights_path.exists():
            raise FileNotFoundError(f"{weights_path}: missing (run `dvc repro` or `dvc pull`)")
        try:
            selected = read_json(weights_path)["selected"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{weights_path}: not the ensemble stage's weights.json ({err!r})") from None
        members, vals = {}, {}
        for name in selected:
            members[name] = load_model(Path(models_dir) / name)
            vals[name] = read_predictions(Path(predictions) / name / "val.csv")
        crops = load_section(CropsConfig, "crops", params)
        for name, model in members.items():
            if model.img_size != crops.crop_px:
                raise ValueError(f"{Path(models_dir) / name}: trained on {model.img_size} px crops, but "
                                 f"{params} says crops.crop_px = {crops.crop_px}")
        combiner = final_combiner(vals, load_section(EnsembleConfig, "ensemble", params))
        return cls(members, combiner, crops, load_section(PredictConfig, "predict", params))

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """(N, 9) ensemble probabilities of (N, S, S, 3) uint8 crops made by
        ``crops.cutting.crop_test_image`` with this pipeline's crop settings."""
        if not len(crops):
            return np.zeros((0, N_CLASSES))
        P = np.stack([model.predict_proba(crops, tta=self.predict.tta, batch_size=self.predict.batch_size)
                      for model in self.members.values()])
        return self.combiner.predict_proba(P)
