"""The params files: keys DVC can see, and the same keys in the default and the tiny file."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from springtail.crops.cutting import CropsConfig
from springtail.models.cnn_xgb import CnnXgbConfig
from springtail.models.timm_net import HybridConfig, VitConfig

from conftest import REPO

# DVC's run-cache drops params keys named `size` or `nfiles` from a stage's hash (upstream DVC
# issue #10296): changing such a key restores the outputs of the old value from the run-cache.
INVISIBLE_TO_DVC = {"size", "nfiles"}
PARAMS_FILES = ("params.yaml", "params.tiny.yaml")


def keys(node, prefix=""):
    """Every dotted key path of a nested mapping."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from keys(value, f"{prefix}{key}.")


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_no_params_key_is_invisible_to_dvc(name):
    found = [k for k in keys(yaml.safe_load((REPO / name).read_text()))
             if k.rsplit(".", 1)[-1] in INVISIBLE_TO_DVC]
    assert not found, f"{name}: DVC's run-cache ignores these keys (DVC #10296): {found}"


@pytest.mark.parametrize("config", [CropsConfig, HybridConfig, VitConfig, CnnXgbConfig])
def test_no_config_field_is_invisible_to_dvc(config):
    assert not {f.name for f in dataclasses.fields(config)} & INVISIBLE_TO_DVC


def test_tiny_params_have_the_default_keys():
    default, tiny = (set(keys(yaml.safe_load((REPO / n).read_text()))) for n in PARAMS_FILES)
    assert default == tiny, f"only in params.yaml: {sorted(default - tiny)}; only in tiny: {sorted(tiny - default)}"


def test_errors_name_the_params_file_actually_read(tmp_path):
    from springtail.common.config import load_section

    path = tmp_path / "variant.yaml"
    path.write_text("crops:\n  crop_px: 64\n  sise: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"variant\.yaml: unknown key\(s\) sise in section 'crops'"):
        load_section(CropsConfig, "crops", path)
    path.write_text("crops:\n  crop_px: big\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"variant\.yaml: crops\.crop_px"):
        load_section(CropsConfig, "crops", path)
    path.write_text("crop:\n  crop_px: 64\n", encoding="utf-8")  # a typo in the section name
    with pytest.raises(ValueError, match=r"variant\.yaml: missing section 'crops'"):
        load_section(CropsConfig, "crops", path)


def section_configs() -> list[tuple[str, type]]:
    """(params section, the dataclass that reads it) for every section of params.yaml."""
    from springtail.common.policy import ErrorPolicy
    from springtail.common.runtime import RuntimeConfig
    from springtail.detect.candidates import DetectConfig
    from springtail.labels.consensus import ConsensusConfig
    from springtail.models.inference import PredictConfig
    from springtail.models.timm_net import config_class
    from springtail.models.training import TrainConfig
    from springtail.report.build import ReportConfig
    from springtail.review.opinion import ReviewConfig
    from springtail.scoring.ensemble import EnsembleConfig
    from springtail.scoring.submission import SubmissionConfig
    from springtail.synth import SynthConfig

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    fixed = {"data": ErrorPolicy, "synthesize": SynthConfig, "consensus": ConsensusConfig,
             "crops": CropsConfig, "train": TrainConfig, "cnn_xgb": CnnXgbConfig,
             "predict": PredictConfig, "ensemble": EnsembleConfig, "submission": SubmissionConfig,
             "report": ReportConfig, "review": ReviewConfig,
             "detect": DetectConfig, "runtime": RuntimeConfig}
    models = {name: config_class(section) for name, section in params.items()
              if name not in fixed and isinstance(section, dict)}
    return sorted((fixed | models).items())


@pytest.mark.parametrize("section, config", section_configs())
def test_params_yaml_is_the_only_place_defaults_live(section, config):
    """No config field has a default of its own to contradict params.yaml, and the section
    holds exactly the fields (the data section: also raw_dir, used by dvc.yaml only)."""
    fields = dataclasses.fields(config)
    with_default = [f.name for f in fields
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert not with_default, f"{config.__name__} has defaults {with_default}: they belong in params.yaml"
    # data.raw_dir is read by dvc.yaml only; a model section's family routes it to a registry factory
    given = set(yaml.safe_load((REPO / "params.yaml").read_text())[section]) - ({"raw_dir"} if section == "data" else {"family"})
    assert given == {f.name for f in fields}


def test_a_missing_key_is_an_error_naming_the_file(tmp_path):
    from springtail.common.config import load_section

    path = tmp_path / "variant.yaml"
    section = yaml.safe_load((REPO / "params.yaml").read_text())["crops"]
    del section["margin"]
    path.write_text(yaml.safe_dump({"crops": section}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"variant\.yaml: missing key\(s\) crops\.margin"):
        load_section(CropsConfig, "crops", path)
    section["margin"] = -1.0
    path.write_text(yaml.safe_dump({"crops": section}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"variant\.yaml: section 'crops': crops\.margin"):
        load_section(CropsConfig, "crops", path)
