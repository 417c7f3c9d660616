"""Fuzz the alert readers with mutated real packets and print what went wrong (nothing, we hope).

Every case damages one real file of ../shared/data/ztf (see stampnet/testing/mutators.py) and reads
it with ``iter_alerts`` in a worker process; the report counts crashes, hangs (per-case timeout),
NaN/inf reaching alert tensors or, for a sample, the model inputs, and inputs that vanished without
a rejection. Exit status 1 if any of those is non-zero.

    nice python benchmarks/fuzz.py --cases 10000 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stampnet.shared_data import shared_dir
from stampnet.testing.fuzz import DEFAULT_TIMEOUT, run_fuzz

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ztf", default=str(shared_dir() / "data" / "ztf"))
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per case")
    parser.add_argument(
        "--sample-every", type=int, default=25, help="check the model inputs of every n-th case"
    )
    parser.add_argument("--case", type=int, action="append", help="replay only this case")
    args = parser.parse_args()

    def progress(report):
        print(
            f"... {report.cases} cases, {report.crashes} crashes, {report.hangs} hangs, "
            f"{len(report.failures)} failures ({report.seconds:.0f} s)",
            flush=True,
        )

    report = run_fuzz(
        args.ztf,
        args.cases,
        seed=args.seed,
        timeout=args.timeout,
        sample_every=args.sample_every,
        progress=progress,
        indices=args.case,
    )
    print(report.summary())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
