"""The parameters reference (docs/params.md), rendered from params.yaml and the config dataclasses.

    .venv/bin/python -m benchmarks.pages [--check]     # renders this page among the others

One table per section of params.yaml: every key, its default (the value in params.yaml, the
only place defaults live) and what it does, from the comment on the field of the frozen
dataclass the section is loaded into (`springtail.common.config.from_section`); a key that no
dataclass holds (`data.raw_dir`, `models`, a model's `family`) takes its params.yaml comment.
Which stages read a section comes from the `params:` lists of dvc.yaml.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import yaml

from springtail.common.policy import ErrorPolicy
from springtail.crops.cutting import CropsConfig
from springtail.detect.candidates import DetectConfig
from springtail.labels.consensus import ConsensusConfig
from springtail.models.cnn_xgb import CnnXgbConfig
from springtail.models.inference import PredictConfig
from springtail.models.registry import MODELS
from springtail.models.timm_net import config_class
from springtail.models.training import TrainConfig
from springtail.report.build import ReportConfig
from springtail.review.opinion import ReviewConfig
from springtail.scoring.ensemble import EnsembleConfig
from springtail.scoring.submission import SubmissionConfig
from springtail.synth.generate import SynthConfig

# The dataclass each section other than a model's is loaded into (a model section's follows
# from its `family` through the registry).
SECTIONS: dict[str, type] = {
    "data": ErrorPolicy, "synthesize": SynthConfig, "consensus": ConsensusConfig, "crops": CropsConfig,
    "review": ReviewConfig, "train": TrainConfig, "predict": PredictConfig, "ensemble": EnsembleConfig,
    "submission": SubmissionConfig, "detect": DetectConfig, "report": ReportConfig,
}
_FIELD = re.compile(r"^\s+(\w+):[^#]*#\s?(.*)$")
_MORE = re.compile(r"^\s+#\s*(.*)$")  # a field comment continued on the next line
_KEY = re.compile(r"^( *)([\w-]+):([^#]*)(?:#\s?(.*))?$")


def section_class(name: str, section) -> type | None:
    """The dataclass params section ``name`` is loaded into; None for a section of no model."""
    if name in SECTIONS:
        return SECTIONS[name]
    family = section.get("family", name) if isinstance(section, dict) else name
    if family not in MODELS:
        return None
    return CnnXgbConfig if family == "cnn_xgb" else config_class(section)


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the source of ``cls`` and its bases (comments may wrap)."""
    comments: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if k is not object]):
        last = None
        for line in inspect.getsource(klass).splitlines():
            if (field := _FIELD.match(line)) and not line.lstrip().startswith(("def ", "#")):
                last = field.group(1)
                comments[last] = field.group(2).strip()
            elif last and (more := _MORE.match(line)):
                comments[last] += " " + more.group(1).strip()
            else:
                last = None
    return comments


def yaml_comments(text: str) -> dict[str, str]:
    """``{"section" or "section.key": comment}`` of a params file (comments may wrap)."""
    comments: dict[str, str] = {}
    section = last = None
    for line in text.splitlines():
        if (key := _KEY.match(line)) and not line.lstrip().startswith("#"):
            indent, name, comment = key.group(1), key.group(2), key.group(4)
            section = name if not indent else section
            last = name if not indent else f"{section}.{name}"
            comments[last] = (comment or "").strip()
        elif last and line.startswith(" ") and (more := _MORE.match(line)):
            comments[last] += " " + more.group(1).strip()
        else:
            last = None
    return comments


def readers(dvc_yaml: dict, models: list[str]) -> dict[str, list[str]]:
    """``{section: [stage, ...]}``: the stages whose dvc.yaml `params:` name the section or one
    of its keys (``${item}`` of a foreach stage: each model's own section)."""
    found: dict[str, list[str]] = {}
    for stage, spec in dvc_yaml["stages"].items():
        body, items = (spec["do"], models) if "foreach" in spec else (spec, [None])
        for entry in body.get("params") or []:
            for item in items:
                name = str(entry).replace("${item}", item) if item else str(entry)
                label = f"{stage}@{item}" if item else stage
                section = name.split(".")[0]
                if label not in found.setdefault(section, []):
                    found[section].append(label)
    return found


def _value(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def section_table(name: str, section, yaml_notes: dict[str, str], stages: list[str]) -> list[str]:
    """The Markdown lines of one section: heading, what it is, who reads it, one row per key."""
    cls = section_class(name, section)
    notes = field_comments(cls) if cls else {}
    lines = [f"## {name}", ""]
    if note := yaml_notes.get(name):
        lines += [note[0].upper() + note[1:].rstrip(".") + ".", ""]
    read = "Read by " + (", ".join(f"`{s}`" for s in stages) or "no stage of the current `models`")
    if not isinstance(section, dict):
        return lines + [f"{read}. Default: `{_value(section)}`.", ""]
    where = f"loaded into `{cls.__module__}.{cls.__qualname__}`" if cls else "no registered model"
    lines += [f"{read}; {where}.", "", "| key | default | what it does |", "|---|---|---|"]
    for key, value in section.items():
        note = notes.get(key) or yaml_notes.get(f"{name}.{key}", "")
        lines.append(f"| `{name}.{key}` | `{_value(value)}` | {note.replace('|', chr(92) + '|')} |")
    return lines + [""]


def render(repo: Path) -> str:
    """The whole reference: one section table per top-level key of params.yaml, in its order."""
    text = (repo / "params.yaml").read_text(encoding="utf-8")
    params, notes = yaml.safe_load(text), yaml_comments(text)
    read_by = readers(yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8")), params["models"])
    lines = []
    for name, section in params.items():
        lines += section_table(name, section, notes, read_by.get(name, []))
    return "\n".join(lines).rstrip("\n")


def undocumented(repo: Path) -> list[str]:
    """Keys of params.yaml with no comment on their field nor in params.yaml."""
    text = (repo / "params.yaml").read_text(encoding="utf-8")
    params, notes = yaml.safe_load(text), yaml_comments(text)
    missing = []
    for name, section in params.items():
        if not isinstance(section, dict):
            missing += [] if notes.get(name) else [name]
            continue
        cls = section_class(name, section)
        fields = field_comments(cls) if cls else {}
        missing += [f"{name}.{k}" for k in section if not (fields.get(k) or notes.get(f"{name}.{k}"))]
    return missing
