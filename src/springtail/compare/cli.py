"""springtail-compare: is revision B better than revision A, beyond the noise?

    springtail-compare REV_A REV_B [--model ensemble|<model>] [--repo .]
                       [--seeds benchmarks/results/seeds.json] [--json]

REV_A and REV_B are git branches, tags or commits, or DVC experiment names. For each, the
model's (default: the ensemble's) validation and test predictions are read through DVC
(the cache, else the remote; nothing is checked out or run), and the answers from the raw
directory's solution.csv when there is one. Printed: macro F1 of A and B on the validation
crops, B - A with a 90 % paired bootstrap interval (validation photos resampled), the same on
the public test half, and whether |B - A| exceeds the seed-to-seed spread measured by
``python -m benchmarks.seeds``. The private half is never shown: choices are made on
validation and public only.

Exit status: 0 after a comparison, 2 when it cannot be made (unknown revision, a table not
produced or not in the cache, different validation crops or labels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from springtail.compare.revision import ENSEMBLE

TITLES = {"val": "validation", "public": "public test half"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="springtail-compare", description=__doc__.splitlines()[0])
    parser.add_argument("rev_a", help="A: git branch, tag, commit or DVC experiment name")
    parser.add_argument("rev_b", help="B: the same; the difference printed is B - A")
    parser.add_argument("--model", default=ENSEMBLE, help="ensemble (default) or one model's name")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository (default: here)")
    parser.add_argument("--seeds", type=Path, default=Path("benchmarks/results/seeds.json"),
                        help="seed-to-seed spread, from `python -m benchmarks.seeds` (relative: to --repo)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return parser.parse_args(argv)


def _split_lines(name: str, r: dict, level: float, seeds_found: bool) -> list[str]:
    groups = f", {r['n_groups']} images" if r["groups"] == "image_id" else ", independent crops"
    zero = ("excludes 0: B and A differ beyond the choice of photos" if r["excludes_zero"]
            else "includes 0: no difference shown on these photos")
    lines = [f"{TITLES[name]} ({r['n']} crops{groups})",
             f"  macro F1   A {r['a']:.3f}   B {r['b']:.3f}   B - A {r['difference']:+.3f}",
             f"  {level * 100:.0f} % interval of B - A [{r['low']:+.3f}, {r['high']:+.3f}]: {zero}"]
    if seeds_found:
        lines.append(f"  {r['seed_verdict']}")  # the study's verdict, or why this split has none
    return lines


def format_text(result: dict) -> str:
    """The comparison of :func:`springtail.compare.paired.compare` as lines for a terminal."""
    a, b = result["a"], result["b"]
    lines = [f"{result['model']}: A = {a['rev']} ({a['commit'][:7]}), B = {b['rev']} ({b['commit'][:7]})",
             ""] + _split_lines("val", result["val"], result["level"], result["seeds_found"])
    if result["public"] is not None:
        lines += _split_lines("public", result["public"], result["level"], result["seeds_found"])
    else:
        lines.append(f"{TITLES['public']}: not compared ({result['public_note']})")
    if not result["seeds_found"]:
        lines.append(result["seeds_note"])  # no study at all: said once
    lines.append("(the private half is never compared: choices are made on validation and public only)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from springtail.compare.paired import compare
    from springtail.compare.revision import read_revision

    repo = args.repo.resolve()
    seeds = args.seeds if args.seeds.is_absolute() else repo / args.seeds
    try:
        a = read_revision(repo, args.rev_a, args.model)
        b = read_revision(repo, args.rev_b, args.model)
        result = compare(a, b, seeds, args.model, n_boot=args.n_boot)
    except ValueError as err:
        print(f"springtail-compare: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
