"""stages/numeric.txt: the versions of the numeric packages whose numbers the computing stages
depend on, read from uv.lock, so that a lock that changes one of them re-runs those stages.

    .venv/bin/python -m benchmarks.numeric --update    # `make lock` runs it after `uv lock`
    .venv/bin/python -m benchmarks.numeric             # print what the file should hold

The choice: the packages that decode, draw, resize, train, predict or fit (torch, torchvision,
timm, safetensors, numpy, scipy, scikit-learn, xgboost, pillow, pandas); the stages that list
the file in dvc.yaml are those that compute with them (synthesize, crops, review, train@,
predict@, ensemble, detector, detect, bundle). The scoring and rendering stages (consensus,
evaluate@, submission, report) count, compare and format: they do not list it.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "pandas", "pillow", "safetensors", "scikit-learn", "scipy", "timm", "torch", "torchvision",
            "xgboost")
HEADER = ("# The numeric packages the computing stages' numbers depend on (from uv.lock, by `make lock`).\n"
          "# A stage that lists this file in dvc.yaml re-runs when one of these versions changes.\n")


def render(lock_path: Path) -> str:
    """The file's text from the lock: one ``name==version`` line per package of PACKAGES.

    Raises:
        ValueError: naming the lock, when a package is missing from it or listed twice.
    """
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    versions: dict[str, set[str]] = {}
    for package in lock.get("package", []):
        if package["name"] in PACKAGES:
            versions.setdefault(package["name"], set()).add(package["version"])
    bad = [name for name in PACKAGES if len(versions.get(name, ())) != 1]
    if bad:
        raise ValueError(f"{lock_path}: expected exactly one version of {', '.join(bad)}")
    return HEADER + "".join(f"{name}=={versions[name].pop()}\n" for name in PACKAGES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=REPO / "uv.lock")
    parser.add_argument("--out", type=Path, default=REPO / "stages/numeric.txt")
    parser.add_argument("--update", action="store_true", help="write --out (else print)")
    args = parser.parse_args(argv)
    text = render(args.lock)
    if args.update:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
