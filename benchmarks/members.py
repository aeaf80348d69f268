"""One member variant over several training seeds, without the pipeline around it.

    .venv/bin/python -m benchmarks.members --name ema --model vit_hybrid --seeds 0 1 2 \
        -S train.ema_decay=0.995 [-S KEY=VALUE ...]
    .venv/bin/python -m benchmarks.members --render [--update docs/decisions.md]

Trains model ``--model`` of params.yaml (with the -S overrides) on the pipeline's crops and
training targets (run `dvc repro review` first), exactly as `train@<model>` would, once per
seed, and scores it on the validation fold and on the public half of the test answers: the
two scores that may choose a setting. The private half is not computed. Each variant goes
to ``benchmarks/results/members/<name>.json`` with the machine and the commit; `--render`
prints one table of every variant (mean and per-seed values), and `--update FILE` rewrites
FILE's table between the markers below. Faster than a `dvc exp` per seed when only one
member changes; the same code path (registry, fit inputs, predict_proba).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

from benchmarks.seeds import provenance, update_doc
from springtail.common.io import read_json, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "members"
BEGIN, END = "<!-- members:begin -->", "<!-- members:end -->"


def overridden(params: dict, pairs: list[str]) -> dict:
    """``params`` with ``SECTION.KEY=VALUE`` overrides (values read as YAML)."""
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"-S {pair!r}: expected SECTION.KEY=VALUE")
        params.setdefault(section, {})[field] = yaml.safe_load(value)
    return params


def score_seed(model_name: str, params: dict, seed: int, data: dict) -> dict:
    """Train one member with ``train.seed = seed``; its validation and public macro F1."""
    from springtail.common.config import from_section
    from springtail.common.f1 import macro_f1
    from springtail.models.registry import create_model
    from springtail.models.session import start_process
    from springtail.models.training import TrainConfig, fit_inputs

    train = from_section(TrainConfig, {**params["train"], "seed": seed}, "train")
    start_process(train)
    started = time.perf_counter()
    model = create_model(model_name, params[model_name], train, data["images"].shape[1])
    inputs = fit_inputs(data["images"], data["index"], train.val_fold, data["targets"])
    model.fit(**inputs, progress=False)
    val = model.predict_proba(inputs["eval_set"][0]).argmax(axis=1)
    test = model.predict_proba(data["test"]).argmax(axis=1)
    return {"seed": seed, "val_macro_f1": macro_f1(inputs["eval_set"][1], val),
            "public_macro_f1": macro_f1(data["public_labels"], test[data["public_rows"]]),
            "seconds": time.perf_counter() - started}


def load_data(raw_dir: Path) -> dict:
    """The pipeline's crops, targets and the public half of the answers."""
    import numpy as np
    import pandas as pd

    from springtail.common.store import load_crops, read_targets
    from springtail.scoring.metrics import usage_rows

    images, index = load_crops(REPO / "data/processed/crops", "train")
    test, test_index = load_crops(REPO / "data/processed/crops", "test")
    public = usage_rows(pd.read_csv(raw_dir / "solution.csv", dtype={"idx": str}), "Public")
    position = pd.Series(np.arange(len(test_index)), index=test_index["idx"].astype(str))
    return {"images": images, "index": index, "targets": read_targets(REPO / "data/processed/targets.csv"),
            "test": test, "public_rows": position.loc[public["idx"]].to_numpy(),
            "public_labels": public["gt"].to_numpy(dtype=int)}


def render_table(results: list[dict]) -> str:
    """Markdown: one row per variant, validation and public macro F1 as mean (per seed)."""
    def cell(runs, key):
        values = [r[key] for r in runs]
        return f"{statistics.fmean(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"

    lines = ["| variant | model | overrides | seeds | val macro F1 | public macro F1 |", "|---|---|---|---|---|---|"]
    for res in results:
        sets = ", ".join(f"`{s}`" for s in res["overrides"]) or "none"
        lines.append(f"| {res['name']} | `{res['model']}` | {sets} | {', '.join(str(r['seed']) for r in res['runs'])} "
                     f"| {cell(res['runs'], 'val_macro_f1')} | {cell(res['runs'], 'public_macro_f1')} |")
    machines = sorted({f"{r['machine'].get('cpu')}, {r['machine'].get('cores_affinity')} cores" for r in results})
    lines += ["", f"Mean (each seed's value). Commits {', '.join(sorted({r['commit'][:7] for r in results}))}; "
              f"{'; '.join(machines)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="the variant's name (its result file)")
    parser.add_argument("--model", help="a model section of params.yaml")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("-S", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--render", action="store_true", help="print the table of every saved variant")
    parser.add_argument("--update", type=Path, help="with --render: rewrite this page's table")
    args = parser.parse_args(argv)
    if args.render:
        table = render_table([read_json(p) for p in sorted(RESULTS.glob("*.json"))])
        print(table)
        if args.update:
            update_doc(args.update, table, BEGIN, END)
        return
    if not (args.name and args.model):
        parser.error("--name and --model are needed (or --render)")
    from springtail.common.config import load_params

    params = overridden(load_params(REPO / "params.yaml"), args.sets)
    data = load_data(REPO / params["data"]["raw_dir"])
    from benchmarks.machine import machine_info

    result = {"name": args.name, "model": args.model, "overrides": args.sets, "runs": [],
              "machine": machine_info(), **provenance()}
    for seed in args.seeds:
        result["runs"].append(score_seed(args.model, params, seed, data))
        print(result["runs"][-1], file=sys.stderr, flush=True)
    write_json(RESULTS / f"{args.name}.json", result)
    print(render_table([result]))


if __name__ == "__main__":
    main()
