"""The species totals' interval before and after PACC's joined the hull, per demo.

    .venv/bin/python -m benchmarks.quantify_intervals [--update docs/decisions.md]

Reads ``benchmarks/results/quantify/<name>.json`` (the interval now: the hull of the
composite's, CC's and PACC's basic intervals) and ``<name>-interval-cc.json`` (the same
benchmark measured with the interval before: the composite's and CC's), both written by
``benchmarks.quantify``, and prints per demo and species mix the lowest coverage of any
judged species and the mean width; ``--update FILE`` rewrites FILE's table between the
markers below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.quantify import RESULTS
from benchmarks.seeds import update_doc
from springtail.common.io import read_json

BLOCK = ("<!-- quantify-interval:begin -->", "<!-- quantify-interval:end -->")
NAMES = ("default", "seed7", "seed11")  # each beside <name>-interval-cc.json, where there is one


def render(names: tuple[str, ...] = NAMES) -> str:
    """Markdown: the composite's interval before (the hull of its own and CC's, results
    ``<name>-interval-cc.json``) and now (PACC's too, ``<name>.json``), per demo and mix: the
    lowest coverage of any judged species and the mean width."""
    lines = ["| demo | species mix | interval: the hull of | lowest coverage of a species, consensus total "
             "| of the true total | mean width (animals) | measured at |", "|---|---|---|---|---|---|---|"]
    for name in names:
        for label, path in (("the composite's and CC's (before)", RESULTS / f"{name}-interval-cc.json"),
                            ("the composite's, CC's and PACC's (now)", RESULTS / f"{name}.json")):
            if not path.exists():
                continue
            result = read_json(path)
            for scenario, mix in (("none", "as drawn"), ("shift", "shifted")):
                rows = result["scenarios"][scenario]
                cells = []
                for ref in ("consensus", "truth") if result["truth"] else ("consensus",):
                    worst = min(rows, key=lambda s: rows[s][f"coverage_measurement_{ref}"])
                    cells.append(f"{rows[worst][f'coverage_measurement_{ref}']:.0%} ({worst})")
                width = np.mean([r["width_measurement"] for r in rows.values()])
                changes = " with changes" if result.get("dirty") else ""
                cells += ["-"] * (2 - len(cells))  # a run without a truth file
                lines.append(f"| {name} | {mix} | {label} | {cells[0]} | {cells[1]} | {width:.1f} "
                             f"| `{result['commit'][:7]}`{changes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="rewrite this page's table")
    args = parser.parse_args(argv)
    table = render()
    print(table)
    if args.update:
        update_doc(args.update, table, *BLOCK)


if __name__ == "__main__":
    main()
