"""Simulation speed: alerts written per second (target >= 500 on 2 CPU cores).

Usage: python benchmarks/simulate.py [--objects 400] [--workers 2]
Prints wall-clock alerts/s and CPU alerts/s (alerts per CPU-second of all processes, which does
not depend on what else shares the machine), and the projected rate on 2 idle cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from stampnet.simulation.simulate import simulate


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cpu, wall = cpu_seconds(), time.perf_counter()
        summary = simulate(scratch, num_objects=args.objects, seed=args.seed, workers=args.workers)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    alerts = summary["num_alerts"]
    load = os.getloadavg()[0]
    print(f"objects {args.objects}, alerts {alerts}, workers {args.workers}")
    print(f"wall   {wall:7.2f} s  -> {alerts / wall:7.1f} alerts/s (load average {load:.1f})")
    print(f"cpu    {cpu:7.2f} s  -> {alerts / cpu:7.1f} alerts per CPU-second")
    print(f"projected on 2 idle cores: {2 * alerts / cpu:7.1f} alerts/s")


if __name__ == "__main__":
    main()
