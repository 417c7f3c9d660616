"""Write simulated ZTF alerts (nightly ztf_public_YYYYMMDD.tar.gz of Avro packets) and labels.

Example: ``stampnet simulate --out simulated --objects 500 --seed 1``, then
``stampnet build --source simulated/alerts --labels simulated/labels.csv --out tfrecords/sim``.
"""

from __future__ import annotations

import argparse
import json

from stampnet.simulation.classes import CLASSES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (alerts/ and labels.csv)")
    parser.add_argument("--objects", type=int, default=1000, help="number of objects")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument(
        "--difficulty", type=float, default=0.5, help="0 (easy) to 1 (faint, poor seeing)"
    )
    parser.add_argument("--max-alerts", type=int, default=12, help="alerts per object at most")
    parser.add_argument(
        "--classes", nargs="+", default=list(CLASSES), choices=CLASSES, help="classes to simulate"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")


def run(args: argparse.Namespace) -> int:
    from stampnet.simulation.simulate import simulate

    summary = simulate(
        args.out,
        num_objects=args.objects,
        seed=args.seed,
        difficulty=args.difficulty,
        max_alerts=args.max_alerts,
        classes_=tuple(args.classes),
        workers=args.workers,
    )
    summary["tarballs"] = len(summary["tarballs"])
    print(json.dumps(summary, indent=2))
    return 0
