"""`dvc plots show` and `dvc plots diff` write a page that renders with no network: the
committed `plots.html_template` (.dvc/plots/index.html) inlines Vega, Vega-Lite and
Vega-Embed instead of DVC's CDN scripts. Checked in headless Chromium with the network
blocked, on pages the real dvc command writes in a small repository made here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, browse, run

BUILD = REPO / ".dvc" / "plots" / "build.py"
DVC_YAML = """\
plots:
  - loss.csv:
      x: step
      y: loss
  - confusion.json:
      template: confusion
      x: predicted
      y: actual
"""
N_PLOTS = 2


def template_setting(repo: Path) -> str | None:
    """``plots.html_template`` of the committed .dvc/config, None when unset."""
    result = run(["dvc", "config", "--project", "plots.html_template"], repo, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def write_plots(repo: Path, losses: list[float], pairs: list[tuple[str, str]]) -> None:
    """A linear plot (loss per step) and a confusion matrix (actual, predicted pairs)."""
    (repo / "loss.csv").write_text("step,loss\n" + "".join(f"{k},{v}\n" for k, v in enumerate(losses)))
    rows = [{"actual": a, "predicted": p} for a, p in pairs]
    (repo / "confusion.json").write_text(json.dumps(rows, indent=1))


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory) -> Path:
    """A DVC repo with the project's plots template, a `main` and an `other` commit (checked out)."""
    repo = tmp_path_factory.mktemp("plots") / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    setting = template_setting(REPO)
    if setting is not None:  # without it the page is DVC's default, and the tests below fail
        template = REPO / ".dvc" / setting
        shutil.copytree(template.parent, repo / ".dvc" / Path(setting).parent, dirs_exist_ok=True)
        run(["dvc", "config", "plots.html_template", setting], repo)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_plots(repo, [1.0, 0.6, 0.4, 0.3], [("a", "a"), ("a", "b"), ("b", "b"), ("c", "c")])
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "main"], repo)
    run(["git", "checkout", "-q", "-b", "other"], repo)
    write_plots(repo, [1.0, 0.5, 0.2, 0.1], [("a", "a"), ("b", "b"), ("b", "b"), ("c", "a")])
    run(["git", "commit", "-qam", "other"], repo)
    return repo


class DrawnPlots(HTMLParser):
    """Ids of the plot divs (DVC's ``<div id=...>``) that hold a drawn Vega view: a canvas or
    svg of class "marks" with a size (what vega-embed adds once the chart is rendered)."""

    def __init__(self, ids: set[str]):
        super().__init__()
        self.ids, self.drawn = ids, set()
        self.current: str | None = None
        self.depth = 0  # open divs inside the current plot div

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.current is None:
            if tag == "div" and attrs.get("id") in self.ids:
                self.current, self.depth = attrs["id"], 1
            return
        if tag == "div":
            self.depth += 1
        sized = float(attrs.get("width") or 0) > 0 and float(attrs.get("height") or 0) > 0
        if tag in ("canvas", "svg") and "marks" in (attrs.get("class") or "").split() and sized:
            self.drawn.add(self.current)

    def handle_endtag(self, tag):
        if self.current is not None and tag == "div":
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def assert_renders_offline(chromium: str, page: Path, tmp: Path) -> str:
    """Every plot of a DVC page is drawn with the network blocked, with no console error;
    return the page's HTML."""
    html = page.read_text(encoding="utf-8")
    ids = re.findall(r"vegaEmbed\('#([^']+)'", html)
    assert len(ids) == N_PLOTS, ids
    dom = browse(chromium, page, tmp / f"profile-{page.parent.name}", "--dump-dom")
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if re.search(r'ERROR:CONSOLE|"(Uncaught|ERROR|Error)', line)]
    assert not errors, "console errors:\n" + "\n".join(errors)
    parser = DrawnPlots(set(ids))
    parser.feed(dom.stdout)
    assert parser.drawn == set(ids), f"plots not drawn: {sorted(set(ids) - parser.drawn)}"
    assert "<script src" not in html, "the page loads a script from elsewhere"  # online it would
    return html


def test_the_committed_template_is_built_from_the_vendored_libraries():
    setting = template_setting(REPO)
    assert setting is not None, "set it: dvc config plots.html_template plots/index.html"
    assert not Path(setting).is_absolute()  # relative to .dvc/, so it holds on every clone
    assert (REPO / ".dvc" / setting).resolve() == BUILD.parent / "index.html"
    check = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for name in ("vega", "vega-lite", "vega-embed"):
        assert (BUILD.parent / "vendor" / name / "LICENSE").is_file(), name


def test_plots_show_renders_offline(plots_repo, chromium, tmp_path):
    out = tmp_path / "show"
    run(["dvc", "plots", "show", "-o", str(out)], plots_repo)
    assert_renders_offline(chromium, out / "index.html", tmp_path)


def test_plots_diff_of_two_commits_renders_offline(plots_repo, chromium, tmp_path):
    out = tmp_path / "diff"
    run(["dvc", "plots", "diff", "main", "other", "-o", str(out)], plots_repo)
    html = assert_renders_offline(chromium, out / "index.html", tmp_path)
    assert '"rev": "main"' in html and '"rev": "other"' in html  # both commits are plotted
