"""The locked environment: uv.lock names every package installed, and the computing stages
depend on the versions of the numeric ones."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import yaml

from benchmarks import numeric
from conftest import BIN, REPO


def test_the_environment_is_exactly_the_lock():
    """What `make env` installed is what uv.lock names, at its versions, and nothing else."""
    lock = {p["name"]: p["version"] for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    frozen = subprocess.run([str(BIN / "uv"), "pip", "freeze", "--python", sys.executable],
                            capture_output=True, text=True, check=True).stdout.split()
    installed = dict(line.lower().split("==") for line in frozen if "==" in line)
    assert installed, frozen
    assert {name: version for name, version in installed.items() if lock.get(name) != version} == {}
    check = subprocess.run([str(BIN / "uv"), "sync", "--frozen", "--all-extras", "--dry-run", "--python",
                            sys.executable], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(BIN.parent)})
    assert "Would make no changes" in check.stderr + check.stdout, check.stderr


def test_numeric_versions_file_is_rendered_from_the_lock():
    assert (REPO / "stages/numeric.txt").read_text() == numeric.render(REPO / "uv.lock")


def test_every_computing_stage_depends_on_the_numeric_versions():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    listing = {name for name, stage in stages.items() if "stages/numeric.txt" in stage.get("do", stage)["deps"]}
    assert listing == {"synthesize", "crops", "review", "train", "predict", "ensemble", "detector", "detect",
                       "bundle"}
