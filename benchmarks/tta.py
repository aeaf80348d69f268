"""Test-time augmentation on the seed study's members: does averaging views pay its cost?

    .venv/bin/python -m benchmarks.tta --experiments seed-0 seed-1 seed-2 [--work DIR]
    .venv/bin/python -m benchmarks.tta --render

Takes the checkpoints of every enabled member from each named DVC experiment (the paths
its commit's dvc.lock records, read through DVC from the local cache; the experiments of
`python -m benchmarks.seeds`), predicts the validation fold's crops and the test crops under
each of the 8 flips/rotations once, and scores the mean-probability ensemble (the default combiner) and each member with
1, 2, 4 and 8 of those views averaged. The views are the codes of
``springtail.models.augment.dihedral``; training draws all 8 at random, so each is a crop the
members have learned. Validation (out of fold) and public macro F1 choose; the private F1 is
written to the JSON file for the record and never shown in the table. Per-view probabilities
are kept in --work (default: a `tta` folder in the system's temporary directory), so a second
run only scores. Writes benchmarks/results/tta.json with the cost of each view count (seconds
per crop and member on this machine), the machine and the commit; `--render` prints the table
that `python -m benchmarks.pages` puts into docs/decisions.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.seeds import git, provenance
from springtail.common.f1 import macro_f1
from springtail.common.io import read_json, write_json

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "tta.json"
# View codes averaged for each count: the identity first, then groups of the square's symmetries
# (2: a mirror; 4: the quarter turns; 8: all).
VIEWS = {1: [0], 2: [0, 1], 4: [0, 3, 5, 6], 8: list(range(8))}


def checkpoint(rev: str, lock: dict, model: str, dest: Path) -> Path:
    """Member ``model``'s checkpoint folder at commit ``rev`` (the path its dvc.lock records),
    fetched into ``dest`` from the DVC cache."""
    from dvc.fs import DVCFileSystem

    stage = lock["stages"][f"train@{model}"]
    path = next(o["path"] for o in stage["outs"] if o["path"].rstrip("/").endswith(f"/{model}"))
    fs = DVCFileSystem(repo=str(REPO), rev=rev)
    try:
        fs.get(path, str(dest), recursive=True)
    finally:
        fs.close()
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["train"].pop("progress", None)  # a runtime knob the older checkpoints still carry
    (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def views(experiment: str, work: Path, crops: dict) -> dict[str, dict[str, np.ndarray]]:
    """member -> {"val", "test"}: (8, N, 9) probabilities under each view (cached in ``work``)."""
    from springtail.compare.revision import resolve
    from springtail.models.registry import load_model

    rev = resolve(REPO, experiment)
    lock = yaml.safe_load(git("show", f"{rev}:dvc.lock"))
    members = yaml.safe_load(git("show", f"{rev}:params.yaml"))["models"]
    result = {}
    for model in members:
        cached = work / experiment / f"{model}.npz"
        if not cached.exists():
            net = load_model(checkpoint(rev, lock, model, work / experiment / model))
            started = time.perf_counter()
            val = net.predict_proba_views(crops["val"], tta=True)
            test = net.predict_proba_views(crops["test"], tta=True)
            seconds = time.perf_counter() - started
            np.savez(cached, val=val, test=test, seconds_per_crop_view=seconds / (8 * (len(val[0]) + len(test[0]))))
        with np.load(cached) as data:
            result[model] = {k: data[k] for k in data.files}
    return result


def score(experiments: list[str], work: Path) -> dict:
    from springtail.common.config import load_params
    from springtail.common.store import load_crops
    from springtail.common.runtime import setup_torch

    setup_torch()
    params = load_params(REPO / "params.yaml")
    crops_dir = REPO / "data" / "processed" / "crops"
    images, index = load_crops(crops_dir, "train")
    val = index["fold"].to_numpy() == params["train"]["val_fold"]
    test_images, test_index = load_crops(crops_dir, "test")
    raw = REPO / params["data"]["raw_dir"]
    solution = pd.read_csv(raw / "solution.csv", dtype={"idx": str}).set_index("idx")
    rows = solution.loc[test_index["idx"].astype(str)]
    labels = {"val": index["label"].to_numpy()[val]}
    masks = {usage: rows["Usage"].to_numpy() == usage.title() for usage in ("public", "private")}
    truth = rows[params["submission"]["class_column"]].to_numpy(int)
    crops = {"val": images[val], "test": test_images}

    def f1s(val_probs: np.ndarray, test_probs: np.ndarray) -> dict[str, float]:
        out = {"val_macro_f1": macro_f1(labels["val"], val_probs.argmax(axis=1))}
        for usage, mask in masks.items():
            out[f"{usage}_macro_f1"] = macro_f1(truth[mask], test_probs[mask].argmax(axis=1))
        return out

    runs = {}
    for experiment in experiments:
        probs = views(experiment, work, crops)
        per_count = {}
        for count, codes in VIEWS.items():
            member = {m: f1s(p["val"][codes].mean(0), p["test"][codes].mean(0)) for m, p in probs.items()}
            ensemble = f1s(np.mean([p["val"][codes].mean(0) for p in probs.values()], axis=0),
                           np.mean([p["test"][codes].mean(0) for p in probs.values()], axis=0))
            per_count[str(count)] = {"ensemble": ensemble, "members": member}
        seconds = float(np.mean([float(p["seconds_per_crop_view"]) for p in probs.values()]))
        runs[experiment] = {"views": per_count, "members": list(probs), "seconds_per_crop_view": seconds}
    return {"experiments": experiments, "views": {str(k): v for k, v in VIEWS.items()}, "runs": runs,
            "crops": {"val": int(val.sum()), "test": int(len(test_images))}}


def render(result: dict) -> str:
    """The decisions log's table: per view count, the ensemble's validation and public macro F1
    over the experiments (mean, then each), their paired gain over one view, and the cost."""
    runs = result["runs"]
    names = result["experiments"]
    lines = ["| views averaged | ensemble val macro F1 | gain over 1 view | ensemble public macro F1 "
             "| gain over 1 view | predict time per member |", "|---|---|---|---|---|---|"]
    seconds = np.mean([runs[n]["seconds_per_crop_view"] for n in names])
    n_crops = result["crops"]["val"] + result["crops"]["test"]
    for count in result["views"]:
        cells = []
        for key in ("val_macro_f1", "public_macro_f1"):
            values = [runs[n]["views"][count]["ensemble"][key] for n in names]
            gains = [v - runs[n]["views"]["1"]["ensemble"][key] for v, n in zip(values, names)]
            cells.append(f"{np.mean(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})")
            cells.append("" if count == "1" else f"{np.mean(gains):+.3f} ({', '.join(f'{g:+.3f}' for g in gains)})")
        cells.append(f"{seconds * int(count) * n_crops:.0f} s")
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    m = result["machine"]
    return "\n".join(lines + [
        "", f"Experiments {', '.join(names)} (the default's seed study: members "
        f"{', '.join(runs[names[0]]['members'])}, averaged); mean (each experiment's value). Time: "
        f"{result['crops']['val']} validation and {result['crops']['test']} test crops. "
        f"`python -m benchmarks.tta`, commit `{result['commit'][:7]}`, {m['cpu']}, {m['cores_affinity']} cores."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["seed-0", "seed-1", "seed-2"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tta")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--render", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args(argv)
    if args.render:
        print(render(read_json(args.out)))
        return 0
    from benchmarks.machine import machine_info

    result = score(args.experiments, args.work)
    info = machine_info()
    result |= provenance() | {"machine": {"cpu": info["cpu"], "cores_affinity": info["cores_affinity"],
                                          "bf16_native": info["bf16_native"]}}
    write_json(args.out, result)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
