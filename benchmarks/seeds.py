"""How much do the scores move with the training seed? One DVC experiment per seed.

    .venv/bin/python -m benchmarks.seeds --seeds 0 1 2 [--params-set KEY=VALUE ...] [--name seed]
                                         [--out benchmarks/results/seeds.json] [--show-only]
    .venv/bin/python -m benchmarks.seeds --render [--update docs/seeds.md]

Queues one `dvc exp run --queue -n seed-<N> -S train.seed=<N> [-S KEY=VALUE ...] submission
evaluate` per seed, runs the queue one experiment at a time (`dvc queue start`), and writes to
--out, from `dvc exp show --json`, every model's and the ensemble's validation (out-of-fold),
public and private macro F1 over the seeds (mean, sample standard deviation, the values), the
members the ensemble selected, the machine, the commit and the date. `--show-only` collects the
finished experiments of the current commit without queueing. `--render` prints the Markdown
table of --out; `--update FILE` also rewrites FILE's table, between the lines
`<!-- seeds:begin -->` and `<!-- seeds:end -->`.

Only the stages up to `submission` and the `evaluate@<model>` stages run (not the detector nor
the report): nothing depends on `evaluate`, so a run of `submission` alone would leave every
model's scores those of the baseline. A study replaces the experiments of the same names on the
same commit; the workspace is left untouched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.label_policies import REPO, dvc
from springtail.common.io import atomic_path, read_json, write_json

RESULT = REPO / "benchmarks" / "results" / "seeds.json"
BEGIN, END = "<!-- seeds:begin -->", "<!-- seeds:end -->"
SCORES = ("val_macro_f1", "public_macro_f1", "private_macro_f1")
ENSEMBLE, TRAIN = "metrics/ensemble.json", "metrics/train/"
# `submission` scores the ensemble; the `evaluate` group (one stage per model, which no stage
# depends on) scores the members
TARGETS = ("submission", "evaluate")


def name_of(seed: int, prefix: str = "seed") -> str:
    return f"{prefix}-{seed}"


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: VALUE}``, as `dvc exp run -S` reads them.

    Raises:
        ValueError: a pair without ``=``, or ``train.seed`` (the study sets it).
    """
    sets = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--params-set {pair!r}: expected KEY=VALUE")
        if key == "train.seed":
            raise ValueError("--params-set train.seed: the study sets the seed (use --seeds)")
        sets[key] = value
    return sets


def queue(seeds: list[int], sets: dict[str, str], prefix: str = "seed") -> list[str]:
    """Queue one experiment per seed (the stages of TARGETS), replacing same-named ones."""
    names = [name_of(seed, prefix) for seed in seeds]
    existing = set(dvc("exp", "ls", "--name-only", capture=True).split())
    if stale := [name for name in names if name in existing]:
        print(f"replacing the earlier experiments {', '.join(stale)}", file=sys.stderr)
        dvc("exp", "remove", *stale)
    for seed, name in zip(seeds, names):
        pairs = {"train.seed": str(seed), **sets}
        args = [arg for key, value in pairs.items() for arg in ("-S", f"{key}={value}")]
        dvc("exp", "run", "--queue", "--name", name, *args, *TARGETS)
    return names


def wait_for_queue(poll_s: float = 20.0, grace_s: float = 120.0) -> None:
    """Start one worker and wait until nothing is queued or running.

    Raises:
        RuntimeError: experiments wait and no worker has served them for ``grace_s`` (a
            worker just started takes a few seconds to show in `dvc queue status`).
    """
    dvc("queue", "start", "--jobs", "1")
    served = time.monotonic()
    while True:
        status = dvc("queue", "status", capture=True)
        if not any(word in status for word in ("Queued", "Running")):
            return
        if "0 active, 0 idle" not in status:
            served = time.monotonic()
        elif time.monotonic() - served > grace_s:
            raise RuntimeError(f"experiments are queued but no worker runs them:\n{status}")
        time.sleep(poll_s)


def experiment_runs(shown: list, names: list[str], commit: str | None = None) -> dict[str, dict]:
    """The finished experiments ``names`` in `dvc exp show --json` output ``shown``.

    ``shown`` lists baselines (the workspace, then commits), each with ``experiments``: a
    list of ``{"name", "executor": {"state"} | None, "revs": [{"data": {"params",
    "metrics": {path: {"data": {...}}}}}]}``. Only the baseline ``commit`` is read, if given.

    Returns:
        ``{name: {"params": {file: params}, "metrics": {path: metrics}}}`` in ``names`` order.
    Raises:
        RuntimeError: naming the experiments not finished (failed, queued, running, missing).
    """
    found, states = {}, {}
    for baseline in shown:
        if commit is not None and baseline.get("rev") != commit:
            continue
        for exp in baseline.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            for rev in exp.get("revs") or []:
                data, name = rev.get("data") or {}, rev.get("name") or exp.get("name")
                if name not in names:
                    continue
                if state not in (None, "success") or not data.get("metrics"):
                    states[name] = state or "no metrics"
                    continue
                found[name] = {"params": {f: e.get("data") or {} for f, e in (data.get("params") or {}).items()},
                               "metrics": {p: e.get("data") or {} for p, e in data["metrics"].items()},
                               "rev": rev.get("rev")}
    if missing := [name for name in names if name not in found]:
        detail = ", ".join(f"{name} ({states.get(name, 'not found')})" for name in missing)
        raise RuntimeError(f"unfinished experiment(s) {detail}: see `dvc queue logs {missing[0]}`")
    return {name: found[name] for name in names}


def check_params(name: str, params: dict[str, dict], sets: dict[str, str]) -> None:
    """Raise ValueError when experiment ``name`` ran with other values than ``sets``
    (``[file:]dotted.key`` -> value as given to `-S`, parsed as YAML like DVC does)."""
    for key, value in sets.items():
        file, _, dotted = key.rpartition(":")
        tree = params.get(file or "params.yaml", {})
        for part in dotted.split("."):
            tree = tree.get(part) if isinstance(tree, dict) else None
        if tree != yaml.safe_load(value):
            raise ValueError(f"experiment {name}: {key} is {tree!r}, not {value} (another study's run?)")


def spread(values: list[float | None]) -> dict:
    """Mean and sample standard deviation (ddof=1) of per-seed ``values``, which are kept.

    The mean needs every value; the deviation at least two (None otherwise).
    """
    complete = bool(values) and all(v is not None for v in values)
    return {"mean": statistics.fmean(values) if complete else None,
            "std": statistics.stdev(values) if complete and len(values) > 1 else None,
            "values": list(values)}


def aggregate(per_seed: list[dict[str, dict]]) -> dict:
    """The study's ``models`` and ``ensemble`` sections from each seed's metrics files.

    Args:
        per_seed: one ``{path: metrics}`` per seed, in seed order.
    Raises:
        ValueError: a seed without metrics/ensemble.json or without some model's scores.
    """
    models = [path[len(TRAIN):-len(".json")] for path in per_seed[0] if path.startswith(TRAIN)]
    for i, metrics in enumerate(per_seed):
        lacking = [p for p in [ENSEMBLE] + [f"{TRAIN}{m}.json" for m in models] if p not in metrics]
        if lacking:
            raise ValueError(f"seed #{i}: no {', '.join(lacking)} in its experiment's metrics")
    trains = [{m: metrics[f"{TRAIN}{m}.json"] for m in models} for metrics in per_seed]
    ensembles = [metrics[ENSEMBLE] for metrics in per_seed]
    out_models = {m: {key: spread([t[m].get(key) for t in trains]) for key in SCORES} for m in models}
    # the member one would submit alone, chosen on validation (never on the answers)
    best = [e.get("best_single_model") or max(models, key=lambda m: t[m]["val_macro_f1"])
            for e, t in zip(ensembles, trains)]
    gains = [None if e.get("private_macro_f1") is None or t[b].get("private_macro_f1") is None
             else e["private_macro_f1"] - t[b]["private_macro_f1"] for e, t, b in zip(ensembles, trains, best)]
    gain = spread(gains)
    ensemble = {key: spread([e.get(key) for e in ensembles]) for key in SCORES}
    ensemble |= {"selected": [e.get("selected") for e in ensembles],
                 "leave_one_out": [e.get("leave_one_out") for e in ensembles],
                 "best_member": best, "gain_private_over_best_member": gain,
                 "gain_private_over_best_member_mean": gain["mean"]}
    return {"models": out_models, "ensemble": ensemble}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, text=True, check=True, capture_output=True).stdout


def provenance() -> dict:
    """Commit, whether the workspace differs from it, and today's date."""
    return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip()),
            "date": datetime.date.today().isoformat()}


def with_selected(ensemble: dict | None, rev: str | None) -> dict | None:
    """The ensemble's metrics with its ``selected`` member names, which `dvc exp show` leaves
    out (a list of strings): read from the experiment's commit, where the file is in git."""
    if ensemble is None or ensemble.get("selected") or not rev:
        return ensemble
    try:
        return ensemble | {"selected": json.loads(git("show", f"{rev}:{ENSEMBLE}")).get("selected")}
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return ensemble


def study(seeds: list[int], sets: dict[str, str], shown: list, where: dict, prefix: str = "seed") -> dict:
    """The result document of a study from `dvc exp show --json` output ``shown``.

    ``where`` is :func:`provenance`'s: only the experiments of its commit are read.
    """
    from benchmarks.machine import machine_info  # torch: only when a study is written

    runs = experiment_runs(shown, [name_of(seed, prefix) for seed in seeds], where["commit"])
    for seed, (name, run) in zip(seeds, runs.items()):
        check_params(name, run["params"], {"train.seed": str(seed), **sets})
        run["metrics"][ENSEMBLE] = with_selected(run["metrics"].get(ENSEMBLE), run.get("rev"))
    return {"seeds": list(seeds), "params_set": dict(sets), "experiments": list(runs),
            "std": "sample (ddof=1)", **aggregate([run["metrics"] for run in runs.values()]),
            "machine": machine_info(), **where}


def _cell(stats: dict) -> str:
    if stats["mean"] is None:
        return "-"
    std = "n/a" if stats["std"] is None else f"{stats['std']:.3f}"
    values = ", ".join(f"{v:.3f}" for v in stats["values"])
    return f"{stats['mean']:.3f} ± {std} ({values})"


def render_table(result: dict) -> str:
    """Markdown: one row per model and the ensemble, val / public / private macro F1 as
    ``mean ± std (per-seed values)``, and a caption with the seeds, params, commit and machine."""
    lines = ["| model | val macro F1 (out of fold) | public macro F1 | private macro F1 |",
             "|---|---|---|---|"]
    rows = [*result["models"].items(), ("**ensemble**", result["ensemble"])]
    lines += [f"| {name} | " + " | ".join(_cell(scores[k]) for k in SCORES) + " |" for name, scores in rows]
    ens, seeds = result["ensemble"], ", ".join(map(str, result["seeds"]))
    gain = ens["gain_private_over_best_member"]
    selected = "; ".join(f"{s}: {', '.join(sel) if sel else 'not recorded'}"
                         for s, sel in zip(result["seeds"], ens["selected"]))
    sets = ", ".join(f"`{k}={v}`" for k, v in result["params_set"].items()) or "none"
    machine = result["machine"]
    lines += ["", f"Seeds (`train.seed`) {seeds}: mean ± {result['std']} standard deviation, then "
              f"the value of each seed in that order. Other params set: {sets}.",
              f"Ensemble minus the member best on validation, private macro F1: {_cell(gain)}. "
              f"Members selected, per seed: {selected}.",
              f"Commit `{result['commit'][:7]}`{' (with uncommitted changes)' if result['dirty'] else ''}, "
              f"{result['date']}; {machine.get('cpu')}, {machine.get('cores_affinity')} cores, "
              f"native bf16: {machine.get('bf16_native')}."]
    return "\n".join(lines)


def update_doc(doc: Path, table: str, begin: str = BEGIN, end_marker: str = END) -> bool:
    """Rewrite what lies between ``doc``'s markers (the seeds ones by default) with ``table``;
    True when it changed.

    Raises:
        ValueError: naming ``doc``, when it lacks a marker or has them out of order.
    """
    text = doc.read_text(encoding="utf-8")
    start = text.find(begin)
    end = text.find(end_marker, start + len(begin)) if start >= 0 else -1
    if end < 0:
        raise ValueError(f"{doc}: expected the marker {begin} and, after it, {end_marker}")
    new = f"{text[:start + len(begin)]}\n{table}\n{text[end:]}"
    if new != text:
        with atomic_path(doc) as tmp:
            tmp.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="train.seed values")
    parser.add_argument("--params-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="more `dvc exp run -S` overrides, the same for every seed")
    parser.add_argument("--out", type=Path, default=RESULT, help="the study's JSON (read by --render)")
    parser.add_argument("--name", default="seed", help="experiment names: <name>-<seed> (one study, one name)")
    parser.add_argument("--show-only", action="store_true", help="collect finished runs, queue nothing")
    parser.add_argument("--commit", help="with --show-only: the commit the experiments ran on (default HEAD)")
    parser.add_argument("--render", action="store_true", help="print the Markdown table of --out")
    parser.add_argument("--update", type=Path, help="with --render: rewrite this page's table")
    parser.add_argument("--marker", default="seeds", help="with --update: the table between <!-- MARKER:begin/end -->")
    args = parser.parse_args(argv)
    if args.update and not args.render:
        parser.error("--update goes with --render")
    if args.render:
        if not args.out.exists():
            parser.error(f"{args.out}: no study yet (run `python -m benchmarks.seeds` first)")
        table = render_table(read_json(args.out))
        print(table)
        if args.update:
            changed = update_doc(args.update, table, f"<!-- {args.marker}:begin -->", f"<!-- {args.marker}:end -->")
            print(f"{args.update}: {'updated' if changed else 'already up to date'}", file=sys.stderr)
        return
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: each seed once")
    try:
        sets = parse_sets(args.params_set)
    except ValueError as err:
        parser.error(str(err))
    where = provenance()  # before queueing: the experiments run this workspace
    if not args.show_only:
        queue(args.seeds, sets, args.name)
        wait_for_queue()
    if args.commit:  # experiments queued on an earlier commit (e.g. before committing their results)
        where["commit"] = git("rev-parse", args.commit).strip()
    # --rev: the experiments of the commit they ran on, even after HEAD moved on
    shown = json.loads(dvc("exp", "show", "--json", "--rev", where["commit"], capture=True))
    result = study(args.seeds, sets, shown, where, args.name)
    write_json(args.out, result)
    print(render_table(result))
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
