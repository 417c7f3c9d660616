"""Dataset build speed: the plain build and the Beam build with 1 and 2 DirectRunner workers.

Builds the same sources three ways, each in a fresh subprocess, and prints alerts/s (alerts read
÷ wall seconds of the whole build: both configs and the card) and the peak resident memory of the
process and of its largest child (Beam's worker processes). Needs the ``beam`` extra.

    python benchmarks/build_beam.py [--source ../shared/data/ztf] [--json build.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STAMPNET_SHARED", REPO.parent / "shared"))


def build_once(kind: str, source: str, labels: str, out: str) -> dict:
    """Runs in the subprocess: one build, its figures."""
    from stampnet.data.beam_build import build_dataset_beam
    from stampnet.data.build import build_dataset

    started = time.perf_counter()
    if kind == "plain":
        card = build_dataset(source, out, labels=labels)
    else:
        card = build_dataset_beam(source, out, labels=labels, num_workers=int(kind[-1]))
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "build": kind,
        "alerts_read": card["num_alerts_read"],
        "seconds": round(seconds, 1),
        "alerts_per_s": round(card["num_alerts_read"] / seconds, 1),
        "peak_rss_mib": round(own, 0),
        "peak_child_rss_mib": round(children, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "data" / "ztf" / "alerts"))
    parser.add_argument("--labels", default=str(SHARED / "data" / "ztf" / "labels.csv"))
    parser.add_argument("--builds", default="plain,beam1,beam2")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(build_once(args.one, args.source, args.labels, tmp)))
        return
    results = []
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for kind in args.builds.split(","):
        command = [sys.executable, __file__, "--one", kind]
        command += ["--source", args.source, "--labels", args.labels]
        done = subprocess.run(
            command,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            raise SystemExit(f"{kind} build failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(lines[0][7:]))
    print("| build | alerts | seconds | alerts/s | peak RSS MiB (process / largest child) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['build']} | {r['alerts_read']} | {r['seconds']} | {r['alerts_per_s']} | "
            f"{r['peak_rss_mib']:.0f} / {r['peak_child_rss_mib']:.0f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
