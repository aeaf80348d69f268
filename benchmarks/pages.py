"""Every figure of the README and the docs that comes from a committed result file, rendered.

    .venv/bin/python -m benchmarks.pages            # rewrite every block below that is stale
    .venv/bin/python -m benchmarks.pages --check    # exit 1, naming them, when any is stale

Each block lies between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in its page and is
rendered from the files in git: the pipeline's scores (``metrics/*.json``, written by
``dvc repro``), the fresh-clone timings (``benchmarks/results/fresh_clone.json``) and the
parameters (params.yaml and the config dataclasses: benchmarks.params_ref). The seed studies
and member variants have their own commands (benchmarks.seeds, benchmarks.members).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.seeds import update_doc
from springtail.common.io import read_json

REPO = Path(__file__).resolve().parents[1]
SPLITS = (("val", "validation (nested out of fold)"), ("public", "public test half"),
          ("private", "private test half (reported, never used to choose)"))


def _f1(scores: dict, split: str) -> str:
    """``0.809 [0.768, 0.842]``: a macro F1 and its 90 % bootstrap interval."""
    value, ci = scores.get(f"{split}_macro_f1"), scores.get(f"{split}_macro_f1_ci90")
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "")


def _percent(fraction: float, sign: str = "") -> str:
    return f"{fraction * 100:{sign}.0f} %"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _members(repo: Path) -> dict[str, dict]:
    return {p.stem: read_json(p) for p in sorted((repo / "metrics" / "train").glob("*.json"))}


def _run(repo: Path, command: str) -> dict:
    return next(r for r in read_json(repo / "benchmarks/results/fresh_clone.json")["runs"] if r["command"] == command)


def headline(repo: Path) -> str:
    """The README's three rows: the ensemble's scores, the detector's, the run time."""
    ens, det, run = read_json(repo / "metrics/ensemble.json"), read_json(repo / "metrics/detect.json"), _run(repo, "make repro")
    machine = read_json(repo / "benchmarks/results/fresh_clone.json")["machine"]
    f1 = " · ".join(f"{split} {_f1(ens, split)}" for split, _ in SPLITS)
    return "\n".join([
        "| on the synthetic demo | value | from |", "|---|---|---|",
        f"| ensemble macro F1 [90 % interval] | {f1} | `metrics/ensemble.json` |",
        f"| springtails found in the {det['photos']} validation photos: recall / precision at IoU {det['iou']} "
        f"| {det['recall']:.3f} / {det['precision']:.3f} | `metrics/detect.json` |",
        f"| `make repro` from a fresh clone, set-up included | {_duration(run['seconds'])} ({machine['cores_affinity']} cores of an "
        f"{machine['cpu']}{'' if machine['bf16_native'] else ', no native bf16'}; commit `{run['commit'][:7]}`) | `benchmarks/results/fresh_clone.json` |"])


def count_trust(repo: Path) -> str:
    """How far the counts go: the error per photo and the species totals of metrics/detect.json."""
    det = read_json(repo / "metrics/detect.json")
    totals = det["species_totals"]
    errors = sorted(abs(t["relative_error"]) for t in totals.values())
    worst = max(totals, key=lambda s: abs(totals[s]["relative_error"]))
    return (f"How far to trust them: on the demo's {det['photos']} validation photos ({det['annotated_boxes']} annotated springtails) "
            f"the count per photo is off by {det['count_mae_per_photo']:.2f} on average, but a species' total is "
            f"only as good as the classifier naming each box: the totals came out {_percent(errors[0])} to "
            f"{_percent(errors[-1])} off ({worst} {totals[worst]['predicted']} for {totals[worst]['annotated']}) "
            f"as plain counts; `totals.csv` corrects them and gives the 90 % interval to report "
            f"({worst} {_estimate(det, worst)} on the same photos, which also calibrated it; how often the interval "
            f"holds the truth: the species-totals benchmark of the counting docs). "
            f"Check the `boxes_to_check` by hand before reporting a rare species.")


def _estimate(det: dict, species: str) -> str:
    """``23 [12, 30] for 21``: a species' corrected total on the validation photos."""
    e = det.get("species_estimates", {}).get(species)
    return "-" if e is None else f"{e['estimate']:.0f} [{e['low']}, {e['high']}] for {e['annotated']}"


def identify_trust(repo: Path) -> str:
    """How far the species go: the ensemble's validation macro F1 and its weakest classes."""
    ens = read_json(repo / "metrics/ensemble.json")
    per_class = sorted(ens["per_class_f1"].items(), key=lambda kv: kv[1])
    weakest = ", ".join(f"{code} {f1:.2f}" for code, f1 in per_class[:2])
    return (f"How far to trust it: on the demo's {ens['n_val']} validation crops the ensemble scores macro F1 {_f1(ens, 'val')}; "
            f"its weakest classes: {weakest} (F1).")


def tests_line(repo: Path) -> str:
    run = _run(repo, "bash .ci/run")
    return (f"`make test` runs the whole suite ({run['tests']} tests; `bash .ci/run` from a fresh clone took "
            f"{_duration(run['seconds'])} on 2 cores, set-up included, pytest {_duration(run['pytest_seconds'])}; "
            f"commit `{run['commit'][:7]}`).")


def fresh_clone(repo: Path) -> str:
    """The benchmarks page's table of whole runs from a fresh clone."""
    result = read_json(repo / "benchmarks/results/fresh_clone.json")
    lines = ["| command | what | time | commit | date |", "|---|---|---|---|---|"]
    lines += [f"| `{r['command']}` | {r['what']} | {_duration(r['seconds'])} | `{r['commit'][:7]}` | {r['date']} |"
              for r in result["runs"]]
    m = result["machine"]
    reproduced = [r for r in result["runs"] if "lock_reproduced" in r]
    lock = "".join(f" The `{r['command']}` clone's dvc.lock {'held' if r['lock_reproduced'] else 'did NOT hold'} "
                   f"the committed output hashes." for r in reproduced)
    base = result.get("baseline")
    if base:  # `make repro` of an earlier revision, timed right after HEAD's
        lines.append(f"| `{base['command']}` at `{base['commit'][:7]}` | the same, at the baseline revision, "
                     f"right after | {_duration(base['seconds'])} | `{base['commit'][:7]}` | {base['date']} |")
        lock += (f" `make repro` took {base['ratio']:.2f}x the baseline's time (`--baseline "
                 f"{base['commit'][:7]}`, the two back to back).")
    return "\n".join(lines + ["", f"{m['cpu']}, {m['cores_affinity']} cores, native bf16: {m['bf16_native']}; "
                              f"measured by `python -m benchmarks.fresh_clone`.{lock}"])


def scores(repo: Path) -> str:
    """Every member and the ensemble on the three splits, then what the ensemble selected."""
    ens, members = read_json(repo / "metrics/ensemble.json"), _members(repo)
    lines = ["| model | " + " | ".join(label for _, label in SPLITS) + " |", "|---|---|---|---|"]
    for name, m in [*members.items(), ("**ensemble**", ens)]:
        lines.append(f"| {name} | " + " | ".join(_f1(m, split) for split, _ in SPLITS) + " |")
    loo = ", ".join(f"{k} {v:+.3f}" for k, v in (ens.get("leave_one_out") or {}).items())
    return "\n".join(lines + [
        "", f"Macro F1 [90 % bootstrap interval]; {ens['n_val']} validation crops. Ensemble `{ens['method']}` "
        f"of {', '.join(ens.get('selected') or [])}; each member's leave-one-out effect on the nested "
        f"validation F1: {loo or '-'}; best single member on validation: {ens.get('best_single_model')} "
        f"(the ensemble {ens.get('gain_over_best_single', 0):+.3f})."])


def per_class(repo: Path) -> str:
    ens, members = read_json(repo / "metrics/ensemble.json"), _members(repo)
    columns = [*members.items(), ("ensemble", ens)]
    lines = ["| class | " + " | ".join(name for name, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for code in ens["per_class_f1"]:
        lines.append(f"| {code} | " + " | ".join(f"{m['per_class_f1'][code]:.3f}" for _, m in columns) + " |")
    return "\n".join(lines)


def detector(repo: Path) -> str:
    """The `detect` stage's scores on the validation photos and the scorer's fit."""
    det, fit = read_json(repo / "metrics/detect.json"), read_json(repo / "metrics/detector.json")
    rows = [("validation photos / annotated springtails", f"{det['photos']} / {det['annotated_boxes']}"),
            ("candidates after suppression / accepted as springtails", f"{det['candidates']} / {det['detections']}"),
            (f"recall / precision at IoU {det['iou']} (accepted boxes)", f"{det['recall']:.3f} / {det['precision']:.3f}"),
            ("recall of the candidates after suppression", f"{det['candidate_recall']:.3f}"),
            ("average precision (candidates ranked by the scorer)", f"{det['average_precision']:.3f}"),
            ("mean absolute error of the springtails counted per photo", f"{det['count_mae_per_photo']:.2f}"),
            ("scorer fitted on: training photos / annotated boxes / proposals",
             f"{fit['photos']} / {fit['annotated_boxes']} / {fit['proposals']}"),
            ("proposal recall, all settings / each setting", f"{fit['proposal_recall']:.3f} / "
             + ", ".join(f"{r:.3f}" for r in fit["proposal_recall_by_setting"])),
            ("`min_score` chosen out of fold", f"{fit['min_score']}")]
    lines = ["| measured | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "",
             "| species | annotated | detected | relative error |", "|---|---|---|---|"]
    lines += [f"| {code} | {t['annotated']} | {t['predicted']} | {_percent(t['relative_error'], '+')} |"
              for code, t in det["species_totals"].items()]
    note = f" ({det['note']})" if det.get("note") else ""
    return "\n".join(lines + ["", f"From `metrics/detect.json` and `metrics/detector.json`{note}."])


def params_reference(repo: Path) -> str:
    from benchmarks.params_ref import render  # imports the library (torch): only when rendered

    return render(repo)


def tta(repo: Path) -> str:
    from benchmarks.tta import render

    return render(read_json(repo / "benchmarks/results/tta.json"))


# (page, marker, renderer): every rendered block of the README and the docs.
BLOCKS: list[tuple[str, str, Callable[[Path], str]]] = [
    ("README.md", "headline", headline), ("docs/index.md", "headline", headline),
    ("README.md", "trust-count", count_trust), ("docs/counting.md", "trust-count", count_trust),
    ("README.md", "trust-identify", identify_trust), ("docs/identify.md", "trust-identify", identify_trust),
    ("README.md", "tests", tests_line), ("docs/tests.md", "tests", tests_line),
    ("docs/benchmarks.md", "fresh-clone", fresh_clone),
    ("docs/results.md", "scores", scores), ("docs/results.md", "per-class", per_class),
    ("docs/results.md", "detector", detector), ("docs/counting.md", "detector", detector),
    ("docs/params.md", "params", params_reference), ("docs/decisions.md", "tta", tta),
]


def between(text: str, marker: str) -> str:
    """What lies between a page's ``marker`` lines (ValueError when they are missing)."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"expected the lines {begin} and {end}")
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    args = parser.parse_args(argv)
    stale = []
    for page, marker, render in BLOCKS:
        text = render(REPO)
        if args.check:
            if between((REPO / page).read_text(encoding="utf-8"), marker) != text:
                stale.append(f"{page} ({marker})")
        elif update_doc(REPO / page, text, f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"):
            print(f"{page}: {marker} updated", file=sys.stderr)
    if stale:
        print(f"stale: {', '.join(stale)}; run python -m benchmarks.pages", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
