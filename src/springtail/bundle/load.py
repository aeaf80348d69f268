"""Loading a model bundle: the manifest checked first, then the pipeline and the detector.

Only the bundle's own files are read: no params file, no predictions, no DVC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from springtail.bundle.manifest import read_manifest
from springtail.common.classes import CODES
from springtail.common.config import from_section
from springtail.common.io import read_json
from springtail.crops.cutting import CropsConfig
from springtail.detect.scorer import BoxScorer, load_fitted_scorer
from springtail.identify.trained import TrainedPipeline
from springtail.models.inference import PredictConfig
from springtail.quantify import Calibration

PIPELINE = "pipeline.json"  # classes, members, crop and predict settings
COMBINER = "combiner.json"
MEMBERS = "members"
DETECTOR = "detector"
CALIBRATION = "calibration.json"  # of the species totals (springtail.quantify)
CARD = "README.md"


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]
    pipeline: TrainedPipeline

    def scorer(self) -> BoxScorer:
        """The detector's proposal scorer, with the settings it was fitted with."""
        return load_fitted_scorer(self.root / DETECTOR)

    def calibration(self) -> Calibration:
        """What the species totals of a sample are corrected with."""
        return Calibration.load(self.root / CALIBRATION)


def load_bundle(root: str | Path) -> Bundle:
    """The bundle at ``root``, every file checked against its manifest first.

    Raises:
        FileNotFoundError / ValueError: naming the file: a missing, altered or incompatible
            one, or a member trained on another crop size than the bundle's crops settings.
    """
    root = Path(root)
    manifest = read_manifest(root)
    path = root / PIPELINE
    settings = read_json(path)
    if settings.get("classes") != list(CODES):
        raise ValueError(f"{path}: classes {settings.get('classes')}, this springtail names {list(CODES)}")
    crops = from_section(CropsConfig, settings.get("crops"), "crops", path)
    predict = from_section(PredictConfig, settings.get("predict"), "predict", path)
    pipeline = TrainedPipeline.from_parts(root / MEMBERS, root / COMBINER, crops, predict)
    if list(pipeline.members) != settings.get("members"):
        raise ValueError(f"{root / COMBINER}: combines {list(pipeline.members)}, {path} lists "
                         f"{settings.get('members')}")
    return Bundle(root, manifest, pipeline)
