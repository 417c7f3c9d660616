"""Dataset build speed and equality: the plain build and the Beam build with 1 and 2 workers.

Builds the same sources three ways, each in a fresh subprocess, and prints alerts/s (alerts read
÷ wall seconds of the whole build: both configs and the card) and the peak resident memory of the
process and of its largest child (Beam's worker processes). Then checks that every Beam build
holds the plain build's examples (decoded, per-example digests), splits and card
(``stampnet.data.compare``). Needs the ``beam`` extra.

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

from stampnet.shared_data import shared_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_dir()


def build_once(kind: str, source: str, labels: str, out: str) -> dict:
    """Runs in the subprocess: one build, its figures."""
    from stampnet.data.beam_build import build_dataset_beam
    from stampnet.data.build import build_dataset

    started = time.perf_counter()
    if kind == "plain":
        card = build_dataset(source, out, labels=labels)
    else:
        card = build_dataset_beam(source, out, labels=labels, num_workers=int(kind[4:]))
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
    parser.add_argument("--source", default=str(SHARED / "data" / "ztf"))
    parser.add_argument("--labels", default=str(SHARED / "data" / "ztf" / "labels.csv"))
    parser.add_argument("--builds", default="plain,beam1,beam2")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the subprocess
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(build_once(args.one, args.source, args.labels, args.out)))
        return
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="build-beam-") as root:
        results, same = run_builds(args, Path(root))
    print_table(results, same)
    if args.json:
        machine = {"cpus": os.cpu_count(), "load_average_at_start": load, "source": args.source}
        payload = {"machine": machine, "builds": results, "equal": same}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


def run_builds(args, root: Path) -> tuple[list, dict]:
    from stampnet.data.compare import card_differences, differences, digests

    results = []
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    for kind in args.builds.split(","):
        command = [sys.executable, __file__, "--one", kind, "--out", str(root / kind)]
        command += ["--source", args.source, "--labels", args.labels]
        done = subprocess.run(
            command,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            error = [line for line in done.stderr.splitlines() if "Error" in line][-1:]
            print(f"{kind} build failed:\n{done.stderr[-3000:]}", flush=True)
            results.append({"build": kind, "failed": error[0] if error else done.returncode})
            continue
        results.append(json.loads(lines[0][7:]))
        print(results[-1], flush=True)
    kinds = [result["build"] for result in results if "failed" not in result]
    same = {}
    if "plain" in kinds:
        expected = digests(root / "plain")
        for kind in kinds:
            if kind != "plain":
                found = card_differences(root / "plain", root / kind)
                found += differences(expected, digests(root / kind))
                same[kind] = found or True
    return results, same


def print_table(results: list, same: dict) -> None:
    print("| build | alerts | seconds | alerts/s | peak RSS MiB (process / largest child) |")
    print("|---|---|---|---|---|")
    for r in results:
        if "failed" in r:
            print(f"| {r['build']} | failed: {r['failed']} | | | |")
            continue
        print(
            f"| {r['build']} | {r['alerts_read']} | {r['seconds']} | {r['alerts_per_s']} | "
            f"{r['peak_rss_mib']:.0f} / {r['peak_child_rss_mib']:.0f} |"
        )
    for kind, verdict in same.items():
        if verdict is True:
            print(f"{kind}: the same examples, splits and card as the plain build")
        else:
            print(f"{kind}: DIFFERS from the plain build:\n  " + "\n  ".join(verdict))


if __name__ == "__main__":
    main()
