"""Which label cleaning gives the better classifier? One DVC experiment per label policy.

    .venv/bin/python -m benchmarks.label_policies [--models effnet] [--seeds 0] [--show-only]

Queues one `dvc exp run --queue -S ...` per policy (consensus method x soft or hard
training targets), with the same member(s) and seed, runs the queue one experiment at a
time (`dvc queue start`), and prints, from `dvc exp show --json`, a table per policy:
label accuracy against the demo's truth (all boxes / disputed boxes), expected
accuracy of the consensus and of the training targets (after the review stage's second
pass, over the box crops trained on), expected calibration error of the targets'
confidence, boxes kept, and the ensemble's validation (out-of-fold), public and private
macro F1. The last line is JSON.

Only the stages up to `submission` and the per-model `evaluate` run (not the report). The experiments stay in the
repository (`dvc exp show`, `dvc exp apply <name>`); the workspace is left untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]

# policy -> params it sets; "unanimous" is the winners' filter (only boxes all experts agree on);
# "+model": the review stage's second pass (the model's out-of-fold opinion as a fifth expert).
POLICIES = {
    "unanimous": {"consensus.method": "unanimous", "review.relabel": "false", "train.soft_labels": "false"},
    "majority": {"consensus.method": "majority", "review.relabel": "false", "train.soft_labels": "false"},
    "dawid_skene": {"consensus.method": "dawid_skene", "review.relabel": "false", "train.soft_labels": "false"},
    "dawid_skene_soft": {"consensus.method": "dawid_skene", "review.relabel": "false",
                         "train.soft_labels": "true"},
    "dawid_skene_calibrated": {"consensus.method": "dawid_skene_calibrated", "review.relabel": "false",
                               "train.soft_labels": "false"},
    "dawid_skene+model": {"consensus.method": "dawid_skene", "review.relabel": "true",
                          "train.soft_labels": "false"},
    "dawid_skene_calibrated+model": {"consensus.method": "dawid_skene_calibrated", "review.relabel": "true",
                                     "train.soft_labels": "false"},
    "dawid_skene_calibrated+model_soft": {"consensus.method": "dawid_skene_calibrated",
                                          "review.relabel": "true", "train.soft_labels": "true"},
}


def dvc(*args: str, capture: bool = False) -> str:
    # The queue's worker runs `dvc` by name: this interpreter's bin directory goes first on PATH.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([*DVC, *args], cwd=REPO, text=True, check=True, env=env,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout if capture else ""


def name_of(policy: str, seed: int) -> str:
    return f"labels-{policy.replace('_', '-').replace('+', '-plus-')}-s{seed}"


def queue(policies: list[str], models: list[str], seeds: list[int]) -> list[str]:
    names = []
    for seed in seeds:
        for policy in policies:
            name = name_of(policy, seed)
            sets = {**POLICIES[policy], "train.seed": str(seed), "models": f"[{','.join(models)}]"}
            args = [arg for key, value in sets.items() for arg in ("-S", f"{key}={value}")]
            # evaluate too: nothing downstream needs the per-model scores, so `submission`
            # alone would leave every experiment with the baseline's metrics/train/*.json
            dvc("exp", "run", "--queue", "--name", name, *args, "submission", "evaluate")
            names.append(name)
    return names


def wait_for_queue(poll_s: float = 20.0) -> None:
    """Start one worker and wait until nothing is queued or running (a dead worker is an error)."""
    dvc("queue", "start", "--jobs", "1")
    while True:
        status = dvc("queue", "status", capture=True)
        if not any(word in status for word in ("Queued", "Running")):
            return
        if "0 active, 0 idle" in status:
            raise RuntimeError(f"experiments are queued but no worker runs them:\n{status}")
        time.sleep(poll_s)


def _nodes(tree):
    """Every mapping nested anywhere in `dvc exp show --json`'s output."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _get(tree: dict, path: str):
    for key in path.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def rows(names: list[str]) -> list[dict]:
    """One row per finished experiment named in ``names``, from `dvc exp show --json`."""
    found = {}
    for node in _nodes(json.loads(dvc("exp", "show", "--json", "--all-commits", capture=True))):
        data = node.get("data") or {}
        if node.get("name") in names and data.get("metrics"):
            found[node["name"]] = {k: v.get("data", {}) for k, v in data["metrics"].items()}
    table = []
    for name in names:
        metrics = found.get(name)
        if metrics is None:
            table.append({"experiment": name, "status": "missing (failed?)"})
            continue
        consensus, ensemble = metrics.get("metrics/consensus.json", {}), metrics.get("metrics/ensemble.json", {})
        review = metrics.get("metrics/review.json", {})
        table.append({
            "experiment": name,
            "boxes_kept": consensus.get("boxes_kept"),
            "consensus_accuracy_all": _get(consensus, "truth_accuracy.all"),
            "consensus_accuracy_disputed": _get(consensus, "truth_accuracy.disputed"),
            "targets_accuracy": _get(review, "truth.targets_accuracy"),
            "targets_accuracy_disputed": _get(review, "truth.targets_accuracy_disputed"),
            "calibration_error": _get(review, "truth.targets_calibration_error"),
            "calibration_error_disputed": _get(review, "truth.targets_calibration_error_disputed"),
            "val_macro_f1": ensemble.get("val_macro_f1"),
            "public_macro_f1": ensemble.get("public_macro_f1"),
            "private_macro_f1": ensemble.get("private_macro_f1"),
        })
    return table


def render(table: list[dict]) -> str:
    columns = ["experiment", "boxes_kept", "consensus_accuracy_all", "consensus_accuracy_disputed",
               "targets_accuracy", "targets_accuracy_disputed", "calibration_error",
               "calibration_error_disputed", "val_macro_f1", "public_macro_f1", "private_macro_f1"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table:
        cells = [row.get(c) for c in columns]
        lines.append("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--models", nargs="+", default=["effnet"], help="members trained per policy")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="train.seed values")
    parser.add_argument("--show-only", action="store_true", help="print the table of finished runs")
    args = parser.parse_args(argv)
    names = [name_of(p, s) for s in args.seeds for p in args.policies]
    if not args.show_only:
        started = time.perf_counter()
        queue(args.policies, args.models, args.seeds)
        wait_for_queue()
        print(f"{len(names)} experiments in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    table = rows(names)
    print(render(table))
    print(json.dumps(table))


if __name__ == "__main__":
    main()
