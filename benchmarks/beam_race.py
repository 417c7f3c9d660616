"""The Beam DirectRunner's data-plane race (``stampnet.data.beam_data_plane``), end to end.

Runs a small pipeline on the DirectRunner (multi-process, 1 worker) whose last stage reads
``--branches`` flattened inputs of 20 elements of ``--size`` bytes each, with and without
stampnet's guard, each in a fresh subprocess, and prints how many elements that stage counted.
The runner's periodic flush is set to 1 ms (Beam's is 1 s) so that it fires while the runner
writes a stage's input, as a 1 s flush does when a large input is written on a loaded machine.
Without the guard the count comes up short, with no error; with it, every element arrives.
Rerun it when Beam is upgraded: if the unguarded count is whole every time, the race may be gone.

    python benchmarks/beam_race.py [--branches 20] [--size 20000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def count_once(guard: bool, branches: int, size: int) -> int:
    """Runs in the subprocess: the pipeline, the last stage's element count."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    from stampnet.data import beam_data_plane

    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 1
    if guard:
        beam_data_plane.guard_runner_writes()
    counted = Path(os.environ["BEAM_RACE_OUT"])
    options = ["--direct_num_workers=1", "--direct_running_mode=multi_processing"]
    with beam.Pipeline(options=PipelineOptions(options)) as pipeline:
        inputs = [
            pipeline
            | f"Create{b}" >> beam.Create([(b, i) for i in range(20)])
            | f"Pad{b}" >> beam.Map(lambda key, n=size: (key, b"\0" * n))
            for b in range(branches)
        ]
        (
            inputs
            | "Flatten" >> beam.Flatten()
            | "Count" >> beam.combiners.Count.Globally()
            | "Save" >> beam.Map(lambda n, path=str(counted): Path(path).write_text(str(n)))
        )
    return int(counted.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=20)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", choices=["guarded", "unguarded"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("COUNT", count_once(args.one == "guarded", args.branches, args.size))
        return
    expected = 20 * args.branches
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {expected} elements")
    for _ in range(args.repeats):
        for variant in ("unguarded", "guarded"):
            out = Path(tempfile.gettempdir()) / f"beam_race_{os.getpid()}_{variant}"
            command = [sys.executable, __file__, "--one", variant]
            command += ["--branches", str(args.branches), "--size", str(args.size)]
            started = time.perf_counter()
            done = subprocess.run(
                command,
                env={**os.environ, "PYTHONPATH": str(REPO), "BEAM_RACE_OUT": str(out)},
                capture_output=True,
                text=True,
            )
            out.unlink(missing_ok=True)
            seconds = time.perf_counter() - started
            counts = [line.split()[1] for line in done.stdout.splitlines() if line[:6] == "COUNT "]
            if done.returncode or not counts:
                print(f"{variant}: failed\n{done.stderr[-2000:]}")
                continue
            print(f"{variant}: {counts[0]} of {expected} elements counted ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
