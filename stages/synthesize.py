"""Stage ``synthesize``: write the synthetic data set in the competition's layout.

    python stages/synthesize.py --out data/synthetic [--params params.yaml]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library (and an experiment's)

from springtail.common.config import load_section  # noqa: E402
from springtail.common.runtime import RuntimeConfig  # noqa: E402
from springtail.synth import SynthConfig, generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (replaced when complete)")
    parser.add_argument("--params", default="params.yaml", help="params file with a 'synthesize' section")
    args = parser.parse_args(argv)

    cfg = load_section(SynthConfig, "synthesize", args.params)
    start = time.monotonic()
    step = max(1, (cfg.n_train + cfg.n_test) // 20)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"synthesize: {done}/{total} images and crops, {time.monotonic() - start:.0f} s",
                  file=sys.stderr, flush=True)

    out = generate(cfg, args.out, progress, load_section(RuntimeConfig, "runtime", args.params).workers)
    print(f"synthesize: wrote {out} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
