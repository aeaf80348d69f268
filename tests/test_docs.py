"""The documentation: the site builds without a warning, the README stays short and its links
resolve, every rendered figure matches the committed file it comes from, every params key is
described and every stage has a description."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import pages, params_ref
from conftest import REPO

MKDOCS = Path(sys.executable).parent / "mkdocs"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_site_builds_strict_without_warnings(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, or a page out of the nav, fails."""
    if not MKDOCS.exists():
        pytest.fail(f"{MKDOCS} missing: `make env` installs the docs extra (.[dev,docs])")
    run = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                         capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0 and "WARNING" not in run.stderr, run.stderr
    assert (tmp_path / "site" / "params" / "index.html").exists()


def test_readme_is_at_most_200_lines():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines: move the long form to docs/"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_resolve_on_github():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if path and not (REPO / path).exists():
            broken.append(target)
        elif not path and anchor not in anchors:
            broken.append(target)
    assert not broken, f"README.md links to nothing: {broken}"


@pytest.mark.parametrize("page, marker, render", pages.BLOCKS, ids=[f"{p}:{m}" for p, m, _ in pages.BLOCKS])
def test_rendered_block_matches_the_committed_files(page, marker, render):
    text = (REPO / page).read_text(encoding="utf-8")
    assert pages.between(text, marker) == render(REPO), (
        f"{page} ({marker}) is stale: python -m benchmarks.pages")


def test_between_names_missing_markers():
    with pytest.raises(ValueError, match="<!-- x:begin -->"):
        pages.between("no markers here", "x")


def test_count_trust_reads_the_worst_species(tmp_path):
    (tmp_path / "metrics").mkdir()
    detect = {"photos": 2, "annotated_boxes": 30, "count_mae_per_photo": 0.5,
              "species_totals": {"Cer": {"annotated": 20, "predicted": 22, "relative_error": 0.1},
                                 "LEP": {"annotated": 10, "predicted": 5, "relative_error": -0.5}}}
    (tmp_path / "metrics" / "detect.json").write_text(json.dumps(detect), encoding="utf-8")
    text = pages.count_trust(tmp_path)
    assert "on the demo's 2 validation photos (30 annotated" in text and "off by 0.50" in text
    assert "10 % to 50 % off (LEP 5 for 10)" in text


def test_every_params_key_is_described():
    assert params_ref.undocumented(REPO) == [], "comment the dataclass field (or the params.yaml line)"


def test_field_comments_follow_wrapped_lines_and_bases():
    from springtail.models.timm_net import HybridConfig

    notes = params_ref.field_comments(HybridConfig)
    assert notes["seed_offset"].startswith("added to train.seed")  # from the base NetConfig
    assert notes["freeze_stride"].endswith("keep their pretrained weights (no backward through them)")


def test_every_stage_has_a_one_line_description():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    bodies = {name: spec.get("do", spec) for name, spec in stages.items()}
    lacking = [name for name, body in bodies.items() if not str(body.get("desc", "")).strip()]
    assert not lacking, f"dvc.yaml stages without desc: {lacking}"
    assert all("\n" not in body["desc"] for body in bodies.values())
